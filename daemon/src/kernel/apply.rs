//! Writes a compiled policy into the maps as one atomic change: every entry
//! is written under the inactive generation, then one write to the config
//! map flips the generation the programs use, then the old generation's
//! entries are removed. A packet reads the generation once, so it is judged
//! entirely by the old or entirely by the new policy.

use std::time::Duration;

use anyhow::Context;
use aya::{
    maps::{lpm_trie::Key, IterableMap, LpmTrie, MapData},
    Pod,
};
use iotfence_common::{
    consts::{CONFIG_READY, CONFIG_TRUNKS},
    keys::{device_scope, rule_scope, SCOPE_BITS},
    BindKey, Config as KConfig, DeviceInfo, Lpm4, Lpm6, MacKey, RuleSet,
};
use ipnet::IpNet;

use super::{batch, maps::Maps};
use crate::{config::Config, policy::compile::Compiled};

/// The generation currently enforced, if a policy was ever applied.
pub fn active_generation(maps: &Maps) -> anyhow::Result<Option<u8>> {
    let c = maps.config.get(&0, 0)?;
    Ok((c.flags & CONFIG_READY != 0).then_some((c.generation & 1) as u8))
}

pub fn kernel_config(cfg: &Config, generation: u8) -> KConfig {
    let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
    KConfig {
        generation: generation as u32,
        flags: if cfg.vlans.is_empty() {
            CONFIG_READY
        } else {
            CONFIG_READY | CONFIG_TRUNKS
        },
        tcp_idle_ns: ns(cfg.idle.tcp),
        udp_idle_ns: ns(cfg.idle.udp),
        icmp_idle_ns: ns(cfg.idle.icmp),
        other_idle_ns: ns(cfg.idle.other),
        event_interval_ns: ns(cfg.event_interval),
        event_burst_ns: ns(cfg.event_interval) * (cfg.event_burst.saturating_sub(1)) as u64,
    }
}

/// What this process's last apply wrote, now the active generation: the
/// next apply removes exactly that, instead of scanning the tries for it
/// (~15 ms for 8,000 entries: the kernel walks a trie for each next key).
/// Unknown in a new process and after an apply failed: the next one scans.
#[derive(Default)]
pub struct Written(Option<(u8, Entries)>);

impl Written {
    /// Forgets what was written (the next apply scans, as after a restart).
    pub fn forget(&mut self) {
        self.0 = None;
    }
}

/// Applies `policy`; returns the new generation.
pub fn apply(
    maps: &mut Maps,
    written: &mut Written,
    cfg: &Config,
    policy: &Compiled,
) -> anyhow::Result<u8> {
    let old = active_generation(maps)?;
    let new = match old {
        Some(g) => g ^ 1,
        None => 0,
    };
    // Taken: a failure below leaves it unknown.
    let (leftovers, previous) = match (written.0.take(), old) {
        // The inactive generation was emptied by that apply.
        (Some((g, written)), Some(active)) if g == active => (Entries::default(), written),
        _ => {
            // One scan finds both the leftovers of an apply that died
            // half-way (in the new generation; they would mix in) and the
            // old generation. Only the daemon writes these maps.
            let [leftovers, previous] = Entries::scan(maps, new);
            (leftovers, previous)
        }
    };
    leftovers.remove(maps)?;
    maps.default_device.set(
        new as u32,
        device_info(policy, 0, policy.default_profile, 0),
        0,
    )?;
    let entries = Entries::of(policy, new);
    entries
        .write(maps)
        .context("writing the new policy generation")?;
    // Before the switch: denials cached under this generation's previous
    // turn (two applies ago) must not come back with it.
    maps.grants.bump()?;
    maps.config
        .set(0, kernel_config(cfg, new), 0)
        .context("switching generation")?;
    if old.is_some() {
        previous.remove(maps)?;
    }
    *written = Written(Some((new, entries)));
    Ok(new)
}

fn device_info(policy: &Compiled, id: u32, profile: u16, flags: u8) -> DeviceInfo {
    let p = &policy.profiles[profile as usize];
    let learning = if p.learning {
        iotfence_common::consts::DEVICE_LEARNING
    } else {
        0
    };
    DeviceInfo {
        device: id,
        profile,
        mode: p.mode,
        flags: flags | learning,
    }
}

/// Which address families bind a device to its MAC (see `DEVICE_NEEDS_*`):
/// those it lists addresses of, when it lists a MAC too and did not opt
/// into `match: mac-or-ip`.
fn binding(d: &crate::policy::compile::CompiledDevice) -> u8 {
    use iotfence_common::consts::*;
    if d.mac.is_none() || d.mac_or_ip {
        return 0;
    }
    d.nets.iter().fold(0, |f, n| {
        let host = n.prefix_len() == n.max_prefix_len();
        match (n, host) {
            (IpNet::V4(_), true) => f | DEVICE_NEEDS_IP4,
            (IpNet::V4(_), false) => f | DEVICE_NEEDS_IP4 | DEVICE_PREFIX_IP4,
            (IpNet::V6(_), true) => f | DEVICE_NEEDS_IP6,
            (IpNet::V6(_), false) => f | DEVICE_NEEDS_IP6 | DEVICE_PREFIX_IP6,
        }
    })
}

/// The exact-address bindings of a bound device (its host addresses).
fn bind_keys(d: &crate::policy::compile::CompiledDevice, g: u8) -> Vec<BindKey> {
    let Some(mac) = d.mac.filter(|_| !d.mac_or_ip) else {
        return Vec::new();
    };
    d.nets
        .iter()
        .filter(|n| n.prefix_len() == n.max_prefix_len())
        .map(|n| BindKey {
            mac: MacKey {
                generation: g,
                _pad: 0,
                mac,
            },
            addr: iotfence_common::keys::addr_key(n.addr()),
        })
        .collect()
}

/// Entries for one map (values only when writing).
struct Batch<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K, V> Default for Batch<K, V> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<K: Pod, V: Pod> Batch<K, V> {
    fn write(&self, map: &MapData) -> std::io::Result<()> {
        batch::update(map, &self.keys, &self.values)
    }

    fn remove(&self, map: &MapData) -> std::io::Result<()> {
        batch::delete(map, &self.keys)
    }
}

/// An IPv4 and an IPv6 trie's entries.
struct Tries<V> {
    v4: Batch<Key<Lpm4>, V>,
    v6: Batch<Key<Lpm6>, V>,
}

impl<V> Default for Tries<V> {
    fn default() -> Self {
        Self {
            v4: Batch::default(),
            v6: Batch::default(),
        }
    }
}

impl<V: Pod> Tries<V> {
    fn push(&mut self, scope: [u8; 4], net: &IpNet, value: V) {
        let bits = SCOPE_BITS + net.prefix_len() as u32;
        match net {
            IpNet::V4(n) => {
                let addr = n.addr().octets();
                self.v4.keys.push(Key::new(bits, Lpm4 { scope, addr }));
                self.v4.values.push(value);
            }
            IpNet::V6(n) => {
                let addr = n.addr().octets();
                self.v6.keys.push(Key::new(bits, Lpm6 { scope, addr }));
                self.v6.values.push(value);
            }
        }
    }

    /// Splits the keys in the maps by generation: [`g`, `g ^ 1`].
    fn scan(v4: &LpmTrie<MapData, Lpm4, V>, v6: &LpmTrie<MapData, Lpm6, V>, g: u8) -> [Self; 2] {
        let mut out: [Self; 2] = Default::default();
        for k in v4.keys().filter_map(Result::ok) {
            if let Some(i) = side(k.data().scope[0], g) {
                out[i].v4.keys.push(k);
            }
        }
        for k in v6.keys().filter_map(Result::ok) {
            if let Some(i) = side(k.data().scope[0], g) {
                out[i].v6.keys.push(k);
            }
        }
        out
    }

    fn write(
        &self,
        v4: &LpmTrie<MapData, Lpm4, V>,
        v6: &LpmTrie<MapData, Lpm6, V>,
    ) -> std::io::Result<()> {
        self.v4.write(v4.map())?;
        self.v6.write(v6.map())
    }

    fn remove(
        &self,
        v4: &LpmTrie<MapData, Lpm4, V>,
        v6: &LpmTrie<MapData, Lpm6, V>,
    ) -> std::io::Result<()> {
        self.v4.remove(v4.map())?;
        self.v6.remove(v6.map())
    }
}

/// 0 for generation `g`, 1 for the other one.
fn side(generation: u8, g: u8) -> Option<usize> {
    match generation {
        x if x == g => Some(0),
        x if x == g ^ 1 => Some(1),
        _ => None,
    }
}

/// The policy entries of one generation, map by map: one batch per map
/// (thousands of entries; a syscall each would cost as much as the
/// kernel's work on them).
#[derive(Default)]
struct Entries {
    macs: Batch<MacKey, DeviceInfo>,
    binds: Batch<BindKey, u32>,
    devices: Tries<DeviceInfo>,
    egress: Tries<RuleSet>,
    inbound: Tries<RuleSet>,
}

impl Entries {
    /// What `policy` writes under generation `g`.
    fn of(policy: &Compiled, g: u8) -> Self {
        let mut e = Self::default();
        for d in &policy.devices {
            let info = device_info(policy, d.id, d.profile, binding(d));
            if let Some(mac) = d.mac {
                e.macs.keys.push(MacKey {
                    generation: g,
                    _pad: 0,
                    mac,
                });
                e.macs.values.push(info);
            }
            for k in bind_keys(d, g) {
                e.binds.keys.push(k);
                e.binds.values.push(1);
            }
            for net in &d.nets {
                e.devices.push(device_scope(g), net, info);
            }
        }
        for (id, p) in policy.profiles.iter().enumerate() {
            let scope = rule_scope(g, id as u16);
            for (net, rules) in &p.egress {
                e.egress.push(scope, net, *rules);
            }
            for (net, rules) in &p.inbound {
                e.inbound.push(scope, net, *rules);
            }
        }
        e
    }

    /// The keys in the maps now: [generation `g`, the other one].
    fn scan(maps: &Maps, g: u8) -> [Self; 2] {
        let mut macs: [Batch<MacKey, DeviceInfo>; 2] = Default::default();
        for k in maps.device_by_mac.keys().filter_map(Result::ok) {
            if let Some(i) = side(k.generation, g) {
                macs[i].keys.push(k);
            }
        }
        let mut binds: [Batch<BindKey, u32>; 2] = Default::default();
        for k in maps.device_bind.keys().filter_map(Result::ok) {
            if let Some(i) = side(k.mac.generation, g) {
                binds[i].keys.push(k);
            }
        }
        let [b0, b1] = binds;
        let [d0, d1] = Tries::scan(&maps.device_by_ip4, &maps.device_by_ip6, g);
        let [e0, e1] = Tries::scan(&maps.egress4, &maps.egress6, g);
        let [i0, i1] = Tries::scan(&maps.inbound4, &maps.inbound6, g);
        let [m0, m1] = macs;
        [
            Self {
                macs: m0,
                binds: b0,
                devices: d0,
                egress: e0,
                inbound: i0,
            },
            Self {
                macs: m1,
                binds: b1,
                devices: d1,
                egress: e1,
                inbound: i1,
            },
        ]
    }

    fn write(&self, maps: &mut Maps) -> anyhow::Result<()> {
        self.macs.write(maps.device_by_mac.map())?;
        self.binds.write(maps.device_bind.map())?;
        self.devices
            .write(&maps.device_by_ip4, &maps.device_by_ip6)?;
        self.egress.write(&maps.egress4, &maps.egress6)?;
        self.inbound.write(&maps.inbound4, &maps.inbound6)?;
        Ok(())
    }

    fn remove(&self, maps: &mut Maps) -> anyhow::Result<()> {
        self.macs.remove(maps.device_by_mac.map())?;
        self.binds.remove(maps.device_bind.map())?;
        self.devices
            .remove(&maps.device_by_ip4, &maps.device_by_ip6)?;
        self.egress.remove(&maps.egress4, &maps.egress6)?;
        self.inbound.remove(&maps.inbound4, &maps.inbound6)?;
        Ok(())
    }
}
