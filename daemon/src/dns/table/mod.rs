//! The daemon's account of every learned address: which names (and the
//! patterns they matched) vouch for it, until when. The kernel entry of a
//! (device, address) is derived from its credits: one rule per distinct
//! (protocol, ports) with the latest expiry among the credits that carry it.
//! Learning that would pass a cap is refused; nothing a device may be using
//! is ever evicted to make room.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use iotfence_common::{keys::addr_key, LearnedKey, LearnedRule, LearnedRules, PortRule};

use super::learn::Refusal;
use crate::policy::compile::DomainRule;
use crate::policy::pattern::Pattern;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_addresses_per_name: usize,
    pub max_entries_per_device: usize,
    pub max_entries: usize,
}

/// Why an address is allowed: a name the device resolved, the pattern that
/// name matched, and the deadline (CLOCK_MONOTONIC ns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credit {
    pub name: String,
    pub pattern: Pattern,
    pub rules: Vec<PortRule>,
    pub expires_ns: u64,
}

/// A change for the kernel map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put(LearnedKey, LearnedRules),
    Delete(LearnedKey),
}

pub type EntryKey = (u32, IpAddr);

#[derive(Default)]
pub struct Table {
    /// Private: `per_device` and `per_name` count what it holds.
    entries: BTreeMap<EntryKey, Vec<Credit>>,
    /// Kernel entries found at start that no saved credit explains (learned
    /// after the last state save): kept as they are until they expire or the
    /// policy changes.
    orphans: BTreeMap<EntryKey, LearnedRules>,
    per_device: HashMap<u32, usize>,
    /// Unknown devices (id 0) are budgeted per MAC, like devices: the MAC
    /// whose answer created each of their entries, and the count per MAC.
    stranger_of: HashMap<EntryKey, [u8; 6]>,
    per_stranger: HashMap<[u8; 6], usize>,
    /// Addresses per (device, name), for the per-name cap: counting them in
    /// `entries` took a scan of the device's entries for every answer.
    per_name: HashMap<(u32, String), usize>,
}

/// Counts (`add`) or uncounts the distinct names of an address's credits.
fn tally(per_name: &mut HashMap<(u32, String), usize>, device: u32, credits: &[Credit], add: bool) {
    for (i, c) in credits.iter().enumerate() {
        if credits[..i].iter().any(|p| p.name == c.name) {
            continue;
        }
        let k = (device, c.name.clone());
        if add {
            *per_name.entry(k).or_default() += 1;
        } else if let Some(n) = per_name.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                per_name.remove(&k);
            }
        }
    }
}

pub fn key(device: u32, addr: IpAddr) -> LearnedKey {
    LearnedKey {
        device,
        addr: addr_key(addr),
    }
}

/// The address of a learned-map key (the inverse of `key`).
pub fn addr_of(k: &LearnedKey) -> IpAddr {
    let a = std::net::Ipv6Addr::from(k.addr);
    match a.to_ipv4_mapped() {
        Some(v4) => v4.into(),
        None => a.into(),
    }
}

/// The kernel value for a set of credits; `None` when more distinct rules
/// than a kernel entry holds.
pub fn value(credits: &[Credit]) -> Option<LearnedRules> {
    let mut rules: Vec<LearnedRule> = Vec::new();
    for c in credits {
        for r in &c.rules {
            match rules.iter_mut().find(|x| x.rule == *r) {
                Some(x) => x.expires_ns = x.expires_ns.max(c.expires_ns),
                None => rules.push(LearnedRule {
                    expires_ns: c.expires_ns,
                    rule: *r,
                }),
            }
        }
    }
    LearnedRules::from_rules(&rules)
}

impl Table {
    pub fn len(&self) -> usize {
        self.entries.len() + self.orphans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every credited (device, address) and its credits.
    pub fn entries(&self) -> &BTreeMap<EntryKey, Vec<Credit>> {
        &self.entries
    }

    fn device_entries(&self, device: u32) -> usize {
        self.per_device.get(&device).copied().unwrap_or(0)
    }

    fn addresses_of(&self, device: u32, name: &str) -> usize {
        // The key is owned: a lookup by (u32, &str) needs a borrowed form
        // the tuple does not have; answers are rare next to packets.
        self.per_name
            .get(&(device, name.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Credits `addr` to `name` (matched by `pattern`) for `device` until
    /// `expires_ns`; refreshes an existing credit (never shortening it).
    pub fn credit(
        &mut self,
        limits: &Limits,
        device: u32,
        addr: IpAddr,
        credit: Credit,
    ) -> Result<Option<Write>, Refusal> {
        self.credit_from(limits, device, None, addr, credit)
    }

    /// `credit`, for an answer that went to `mac`: for unknown devices
    /// (id 0) the per-device cap is per MAC, and all of them together hold
    /// at most a quarter of the table, so one stranger can neither spend the
    /// others' budget nor, rotating MACs, the known devices' room.
    pub fn credit_from(
        &mut self,
        limits: &Limits,
        device: u32,
        mac: Option<[u8; 6]>,
        addr: IpAddr,
        credit: Credit,
    ) -> Result<Option<Write>, Refusal> {
        let k = (device, addr);
        let exists = self.entries.contains_key(&k) || self.orphans.contains_key(&k);
        let stranger = mac.filter(|_| device == 0);
        if !exists {
            if self.len() >= limits.max_entries {
                return Err(Refusal::MapFull);
            }
            let over = match stranger {
                Some(m) => {
                    self.per_stranger.get(&m).copied().unwrap_or(0) >= limits.max_entries_per_device
                        || self.device_entries(0) >= limits.max_entries / 4
                }
                None => self.device_entries(device) >= limits.max_entries_per_device,
            };
            if over {
                return Err(Refusal::DeviceBudget);
            }
        }
        let names_addr = self
            .entries
            .get(&k)
            .is_some_and(|cs| cs.iter().any(|c| c.name == credit.name));
        if !names_addr && self.addresses_of(device, &credit.name) >= limits.max_addresses_per_name {
            return Err(Refusal::NameCap);
        }
        let mut credits = self.entries.get(&k).cloned().unwrap_or_default();
        match credits
            .iter_mut()
            .find(|c| c.name == credit.name && c.pattern == credit.pattern)
        {
            Some(c) => {
                c.expires_ns = c.expires_ns.max(credit.expires_ns);
                c.rules = credit.rules;
            }
            None => credits.push(credit),
        }
        let v = value(&credits).ok_or(Refusal::AddressRulesFull)?;
        if self.orphans.remove(&k).is_none() && !self.entries.contains_key(&k) {
            *self.per_device.entry(device).or_default() += 1;
            if let Some(m) = stranger {
                *self.per_stranger.entry(m).or_default() += 1;
                self.stranger_of.insert(k, m);
            }
        }
        tally(&mut self.per_name, device, &credits, true);
        if let Some(old) = self.entries.insert(k, credits) {
            tally(&mut self.per_name, device, &old, false);
        }
        Ok(Some(Write::Put(key(device, addr), v)))
    }

    fn forget(&mut self, k: &EntryKey) {
        if let Some(n) = self.per_device.get_mut(&k.0) {
            *n = n.saturating_sub(1);
        }
        if let Some(m) = self.stranger_of.remove(k) {
            if let Some(n) = self.per_stranger.get_mut(&m) {
                *n -= 1;
                if *n == 0 {
                    self.per_stranger.remove(&m);
                }
            }
        }
    }

    /// Drops expired credits (and entries with none left).
    pub fn expire(&mut self, now_ns: u64) -> Vec<Write> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (k, credits) in self.entries.iter_mut() {
            let before = credits.len();
            tally(&mut self.per_name, k.0, credits, false);
            credits.retain(|c| c.expires_ns > now_ns);
            tally(&mut self.per_name, k.0, credits, true);
            if credits.is_empty() {
                gone.push(*k);
            } else if credits.len() != before {
                if let Some(v) = value(credits) {
                    out.push(Write::Put(key(k.0, k.1), v));
                }
            }
        }
        for k in gone {
            self.entries.remove(&k);
            self.forget(&k);
            out.push(Write::Delete(key(k.0, k.1)));
        }
        let dead: Vec<EntryKey> = self
            .orphans
            .iter()
            .filter(|(_, v)| v.iter().all(|r| r.expires_ns <= now_ns))
            .map(|(k, _)| *k)
            .collect();
        for k in dead {
            self.orphans.remove(&k);
            self.forget(&k);
            out.push(Write::Delete(key(k.0, k.1)));
        }
        out
    }

    /// Re-derives every entry under a new policy: credits whose pattern the
    /// device's profile no longer has go, the rest take the pattern's current
    /// rules. `rules_of(device)` is `None` for a device that no longer exists.
    pub fn reconcile<'a>(
        &mut self,
        rules_of: impl Fn(u32) -> Option<&'a [DomainRule]>,
    ) -> Vec<Write> {
        let mut out = Vec::new();
        let keys: Vec<EntryKey> = self.entries.keys().copied().collect();
        for k in keys {
            let credits = self.entries.get_mut(&k).unwrap();
            let profile = rules_of(k.0).unwrap_or(&[]);
            let before = credits.clone();
            tally(&mut self.per_name, k.0, credits, false);
            credits.retain_mut(|c| {
                match profile
                    .iter()
                    .find(|r| r.pattern == c.pattern && r.pattern.matches(&c.name))
                {
                    Some(r) => {
                        c.rules = r.rules.clone();
                        true
                    }
                    None => false,
                }
            });
            match value(credits) {
                Some(v) if !credits.is_empty() => {
                    tally(&mut self.per_name, k.0, credits, true);
                    if *credits != before {
                        out.push(Write::Put(key(k.0, k.1), v));
                    }
                }
                _ => {
                    self.entries.remove(&k);
                    self.forget(&k);
                    out.push(Write::Delete(key(k.0, k.1)));
                }
            }
        }
        // Orphans cannot be checked against the new policy: they go.
        let orphans = std::mem::take(&mut self.orphans);
        for k in orphans.keys() {
            self.forget(k);
            out.push(Write::Delete(key(k.0, k.1)));
        }
        out
    }

    /// Adopts a kernel entry that no credit explains (see `orphans`).
    pub fn adopt_orphan(&mut self, device: u32, addr: IpAddr, v: LearnedRules) {
        let k = (device, addr);
        if self.entries.contains_key(&k) || self.orphans.contains_key(&k) {
            return;
        }
        *self.per_device.entry(device).or_default() += 1;
        self.orphans.insert(k, v);
    }
}

#[cfg(test)]
mod tests;
