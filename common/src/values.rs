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
/// never extends a long-TTL one that shares the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedRule {
    /// CLOCK_MONOTONIC (bpf_ktime_get_ns) deadline.
    pub expires_ns: u64,
    pub rule: PortRule,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnedRules {
    pub count: u32,
    pub _pad: u32,
    pub rules: [LearnedRule; LEARNED_RULES_PER_ADDR],
}

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
        let mut v = Self {
            count: 1,
            ..Default::default()
        };
        v.rules[0] = LearnedRule { expires_ns, rule };
        v
    }

    #[inline(always)]
    pub fn check(&self, proto: u8, port: u16, now_ns: u64) -> LearnedMatch {
        let n = self.count as usize;
        let mut expired = false;
        let mut i = 0;
        while i < LEARNED_RULES_PER_ADDR {
            if i >= n {
                break;
            }
            let r = &self.rules[i];
            if r.rule.matches(proto, port) {
                if now_ns < r.expires_ns {
                    return LearnedMatch::Allowed;
                }
                expired = true;
            }
            i += 1;
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
    pub _pad: [u8; 6],
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
