//! Map values.

use crate::consts::{LEARNED_RULES_PER_ADDR, PROTO_ANY, RULES_PER_PREFIX};

/// What the datapath needs to know about a device, in one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index into the counters and rate-limit arrays (< MAX_DEVICES).
    pub device: u32,
    pub profile: u16,
    /// `Mode` as a number.
    pub mode: u8,
    /// `DEVICE_NEEDS_IP4` / `DEVICE_NEEDS_IP6`: a device listed with `mac`
    /// and addresses of that family is itself only when both match.
    pub flags: u8,
}

/// One allowed (protocol, port range). For ICMP and ICMPv6 the "port" is the
/// message type; for protocols without ports it is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRule {
    pub lo: u16,
    pub hi: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

impl PortRule {
    pub const fn new(proto: u8, lo: u16, hi: u16) -> Self {
        Self {
            lo,
            hi,
            proto,
            _pad: [0; 3],
        }
    }

    #[inline(always)]
    pub fn matches(&self, proto: u8, port: u16) -> bool {
        (self.proto == PROTO_ANY || self.proto == proto) && self.lo <= port && port <= self.hi
    }
}

/// Rules attached to one destination (or inbound source) prefix. The daemon
/// folds the rules of every shorter covering prefix into each entry, because
/// an LPM trie only returns the longest match.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub count: u32,
    pub rules: [PortRule; RULES_PER_PREFIX],
}

impl Default for RuleSet {
    fn default() -> Self {
        Self {
            count: 0,
            rules: [PortRule::default(); RULES_PER_PREFIX],
        }
    }
}

impl RuleSet {
    #[inline(always)]
    pub fn allows(&self, proto: u8, port: u16) -> bool {
        let n = self.count as usize;
        let mut i = 0;
        while i < RULES_PER_PREFIX {
            if i >= n {
                return false;
            }
            if self.rules[i].matches(proto, port) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// A learned (protocol, port range) with its own expiry, so a short-TTL name
/// never extends a long-TTL one that shares the address. The daemon's view;
/// the kernel entry (`LearnedRules`) packs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedRule {
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns) deadline.
    pub expires_ns: u64,
    pub rule: PortRule,
}

/// Nanoseconds per unit of a learned deadline, as a shift: 2^28 ns
/// (268 ms), so a `u32` deadline covers 2^60 ns (36 years of uptime).
pub const LEARNED_TICK_SHIFT: u32 = 28;

/// A deadline in learned-map units, rounded up: the kernel's `now < deadline`
/// on units never ends an allowance before `expires_ns`, and ends it at most
/// one unit (268 ms) after.
pub const fn learned_ticks(expires_ns: u64) -> u32 {
    let t = expires_ns.div_ceil(1 << LEARNED_TICK_SHIFT);
    if t > u32::MAX as u64 {
        u32::MAX
    } else {
        t as u32
    }
}

/// The learned map's value: up to `LEARNED_RULES_PER_ADDR` (protocol, port
/// range, deadline), packed as parallel arrays into 40 bytes, so that with
/// the key (24) and the kernel's element header (48) and bucket (16) an
/// entry takes 128 bytes (it took 224 with 8 rules of 16 bytes each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedRules {
    /// Deadlines in units of 2^`LEARNED_TICK_SHIFT` ns (`learned_ticks`).
    pub expires: [u32; LEARNED_RULES_PER_ADDR],
    pub lo: [u16; LEARNED_RULES_PER_ADDR],
    pub hi: [u16; LEARNED_RULES_PER_ADDR],
    pub proto: [u8; LEARNED_RULES_PER_ADDR],
    /// Rules in use, from the start of the arrays.
    pub count: u8,
    pub _pad: [u8; 3],
}

// The 128-byte budget of a learned entry depends on these sizes.
const _: () = assert!(core::mem::size_of::<LearnedRules>() == 40);
const _: () = assert!(core::mem::size_of::<crate::LearnedKey>() == 20);

/// Result of matching a learned entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnedMatch {
    Allowed,
    /// A rule matched but its deadline has passed.
    Expired,
    None,
}

impl LearnedRules {
    /// An entry with one rule.
    pub fn one(rule: PortRule, expires_ns: u64) -> Self {
        let mut v = Self::default();
        v.push(LearnedRule { expires_ns, rule });
        v
    }

    /// An entry with these rules; `None` when they are more than it holds.
    pub fn from_rules(rules: &[LearnedRule]) -> Option<Self> {
        if rules.len() > LEARNED_RULES_PER_ADDR {
            return None;
        }
        let mut v = Self::default();
        for r in rules {
            v.push(*r);
        }
        Some(v)
    }

    /// Appends a rule; `false` (and no change) when the entry is full.
    pub fn push(&mut self, r: LearnedRule) -> bool {
        let i = self.count as usize;
        if i >= LEARNED_RULES_PER_ADDR {
            return false;
        }
        self.expires[i] = learned_ticks(r.expires_ns);
        self.lo[i] = r.rule.lo;
        self.hi[i] = r.rule.hi;
        self.proto[i] = r.rule.proto;
        self.count += 1;
        true
    }

    /// Rule `i` as the daemon sees it (its deadline at unit precision).
    pub fn get(&self, i: usize) -> Option<LearnedRule> {
        if i >= (self.count as usize).min(LEARNED_RULES_PER_ADDR) {
            return None;
        }
        Some(LearnedRule {
            expires_ns: (self.expires[i] as u64) << LEARNED_TICK_SHIFT,
            rule: PortRule::new(self.proto[i], self.lo[i], self.hi[i]),
        })
    }

    /// The rules in use (an over-large `count` from a foreign writer is
    /// clamped, as the kernel clamps it).
    pub fn iter(&self) -> impl Iterator<Item = LearnedRule> + '_ {
        (0..LEARNED_RULES_PER_ADDR).map_while(|i| self.get(i))
    }

    #[inline(always)]
    pub fn check(&self, proto: u8, port: u16, now_ns: u64) -> LearnedMatch {
        let now = (now_ns >> LEARNED_TICK_SHIFT) as u32;
        let mut left = self.count;
        let mut expired = false;
        // Zipped rather than indexed: with four parallel arrays LLVM kept a
        // bounds-check panic in the unrolled loop, which the verifier refuses.
        let rules = self
            .proto
            .iter()
            .zip(&self.lo)
            .zip(&self.hi)
            .zip(&self.expires);
        for (((&p, &lo), &hi), &deadline) in rules {
            if left == 0 {
                break;
            }
            left -= 1;
            if (p == PROTO_ANY || p == proto) && lo <= port && port <= hi {
                if now < deadline {
                    return LearnedMatch::Allowed;
                }
                expired = true;
            }
        }
        if expired {
            LearnedMatch::Expired
        } else {
            LearnedMatch::None
        }
    }
}

/// Global settings, written by the daemon (array of one).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Generation (0 or 1) every lookup of this packet uses.
    pub generation: u32,
    /// CONFIG_READY once a complete policy is in the maps; until then every
    /// IP packet is dropped (fail closed).
    pub flags: u32,
    pub tcp_idle_ns: u64,
    pub udp_idle_ns: u64,
    pub icmp_idle_ns: u64,
    pub other_idle_ns: u64,
    /// Minimum spacing of violation events per device (GCRA emission interval).
    pub event_interval_ns: u64,
    /// Burst tolerance of violation events per device.
    pub event_burst_ns: u64,
}

/// Packets and bytes, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Per-device event rate limiter state (GCRA: theoretical arrival time).
/// Updated without atomics: a lost update only lets one more event through.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateState {
    pub tat_ns: u64,
    pub suppressed: u32,
    pub _pad: u32,
}

/// One slot of the per-CPU denial cache (`iotf1_denied`, see
/// `ebpf/src/denied.rs`): what a denied packet's decision read, what it
/// came to, and the violation packets counted while the slot holds that
/// key (moved to `iotf1_viol` when another key takes the slot; the daemon
/// adds what is still here). Valid while the policy generation and the
/// grants epoch are the ones it was decided under.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeniedSlot {
    /// Source address, destination address (v4-mapped for IPv4), source
    /// MAC and rule port, then protocol, family and (ICMPv6) hop limit.
    pub key: [u64; 6],
    pub device: DeviceInfo,
    /// Where the counted packets belong (verdict: dropped or audited).
    pub violation: crate::ViolationKey,
    /// `Config::generation` and the grants epoch at the decision.
    pub generation: u32,
    pub epoch: u32,
    /// `Reason` as a number.
    pub reason: u8,
    /// 1 once claimed: a zeroed slot matches no packet.
    pub live: u8,
    /// Events of this slot's device suppressed by its rate limit and
    /// counted here, not yet in the device's rate state nor in the global
    /// counter (the next event of this slot, or the daemon, adds them).
    pub pending: u16,
    /// While the device's rate limit is exhausted: until when (in units of
    /// 2^24 ns, wrapping; 0 for none) its packets here skip the limiter.
    pub quiet: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// Flow table entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowValue {
    pub last_seen_ns: u64,
    pub device: u32,
    /// 0: opened by the device, 1: inbound allowed by the device's profile.
    pub inbound: u8,
    pub _pad: u8,
    /// The device's MAC when the flow opened: a packet of the flow from
    /// another MAC (a host spoofing the device's address) does not ride it
    /// but is judged as itself.
    pub mac: [u8; 6],
    pub _pad2: [u8; 4],
}

/// The VLANs judged on a trunk interface (`iotf1_trunks`, by ifindex): bit
/// `vid` for each 802.1Q VLAN ID, bit 0 for untagged frames (always set:
/// a NIC that strips tags before XDP makes frames look untagged, and those
/// are judged, never waved through).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanSet {
    pub bits: [u64; 64],
}

impl VlanSet {
    /// Untagged frames only.
    pub const fn untagged() -> Self {
        let mut bits = [0u64; 64];
        bits[0] = 1;
        Self { bits }
    }

    pub fn insert(&mut self, vid: u16) {
        self.bits[(vid >> 6) as usize & 63] |= 1 << (vid & 63);
    }

    #[inline(always)]
    pub fn has(&self, vid: u16) -> bool {
        (self.bits[(vid >> 6) as usize & 63] >> (vid & 63)) & 1 == 1
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;
    use crate::consts::{PROTO_TCP, PROTO_UDP};

    const TICK: u64 = 1 << LEARNED_TICK_SHIFT;

    #[test]
    fn a_learned_deadline_never_ends_early_and_ends_within_one_unit() {
        let rule = PortRule::new(PROTO_TCP, 443, 443);
        for deadline in [
            1,
            TICK - 1,
            TICK,
            TICK + 1,
            5 * TICK + 12_345,
            3_600 * 1_000_000_000,
        ] {
            let v = LearnedRules::one(rule, deadline);
            assert_eq!(v.check(PROTO_TCP, 443, deadline - 1), LearnedMatch::Allowed);
            let end = deadline.div_ceil(TICK) * TICK;
            assert!(end - deadline < TICK);
            assert_eq!(v.check(PROTO_TCP, 443, end - 1), LearnedMatch::Allowed);
            assert_eq!(v.check(PROTO_TCP, 443, end), LearnedMatch::Expired);
            assert_eq!(v.get(0).unwrap().expires_ns, end);
        }
        // Past 36 years of uptime the deadline saturates instead of wrapping.
        assert_eq!(learned_ticks(u64::MAX), u32::MAX);
    }

    #[test]
    fn a_learned_entry_holds_its_rules_and_no_more() {
        let rules: Vec<LearnedRule> = (0..LEARNED_RULES_PER_ADDR as u16)
            .map(|i| LearnedRule {
                expires_ns: (i as u64 + 1) * TICK,
                rule: PortRule::new(
                    if i % 2 == 0 { PROTO_TCP } else { PROTO_UDP },
                    100 + i,
                    200 + i,
                ),
            })
            .collect();
        let v = LearnedRules::from_rules(&rules).unwrap();
        assert_eq!(v.iter().collect::<Vec<_>>(), rules);
        let mut full = v;
        assert!(!full.push(rules[0]));
        assert_eq!(full, v);
        let mut more = rules.clone();
        more.push(rules[0]);
        assert!(LearnedRules::from_rules(&more).is_none());
        // Matching: protocol and range of each rule, its own deadline.
        // TCP 101 is rule 0's alone (rule 2 starts at 102).
        assert_eq!(v.check(PROTO_TCP, 101, TICK - 1), LearnedMatch::Allowed);
        assert_eq!(v.check(PROTO_TCP, 101, TICK), LearnedMatch::Expired);
        assert_eq!(v.check(PROTO_TCP, 150, TICK), LearnedMatch::Allowed);
        assert_eq!(v.check(PROTO_UDP, 101, 2 * TICK - 1), LearnedMatch::Allowed);
        assert_eq!(v.check(PROTO_UDP, 99, 0), LearnedMatch::None);
        assert_eq!(v.check(PROTO_TCP, 203, 0), LearnedMatch::None);
        // A count past the arrays (a foreign writer) reads as full, no more.
        let mut bad = v;
        bad.count = 200;
        assert_eq!(bad.iter().count(), LEARNED_RULES_PER_ADDR);
        assert_eq!(bad.check(PROTO_UDP, 99, 0), LearnedMatch::None);
    }
}
