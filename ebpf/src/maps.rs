//! The maps, pinned by name under the daemon's pin directory so enforcement
//! and state outlive the daemon. Names come from `consts::map_names`.

use crate::scratch::Scratch;
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use iotfence_common::{
    consts::*,
    dns::{DnsControl, RedirectKey, RedirectValue},
    values::FlowValue,
    BindKey, Config, Counter, DeniedSlot, DeviceInfo, FlowKey, LearnedKey, LearnedRules, Lpm4,
    Lpm6, MacKey, RateState, ResentKey, RuleSet, ViolationKey, VlanSet,
};

/// Global settings and the active policy generation (one entry).
#[map(name = "iotf1_config")]
pub static CONFIG: Array<Config> = Array::pinned(1, 0);

/// Device record for unknown devices, per generation (index = generation).
#[map(name = "iotf1_dev_dflt")]
pub static DEFAULT_DEVICE: Array<DeviceInfo> = Array::pinned(2, 0);

/// Devices by source MAC.
#[map(name = "iotf1_dev_mac")]
pub static DEVICE_BY_MAC: HashMap<MacKey, DeviceInfo> = HashMap::pinned(DEVICE_MAC_ENTRIES, 0);

/// Host addresses of MAC-bound devices: (generation, MAC, address) -> 1.
#[map(name = "iotf1_dev_bind")]
pub static DEVICE_BIND: HashMap<BindKey, u32> = HashMap::pinned(DEVICE_PREFIX_ENTRIES, 0);

/// Devices by IPv4 address or CIDR.
#[map(name = "iotf1_dev_ip4")]
pub static DEVICE_BY_IP4: LpmTrie<Lpm4, DeviceInfo> = LpmTrie::pinned(DEVICE_PREFIX_ENTRIES, 0);

/// Devices by IPv6 address or CIDR.
#[map(name = "iotf1_dev_ip6")]
pub static DEVICE_BY_IP6: LpmTrie<Lpm6, DeviceInfo> = LpmTrie::pinned(DEVICE_PREFIX_ENTRIES, 0);

/// Static egress rules: (generation, profile, destination prefix) -> ports.
#[map(name = "iotf1_egress4")]
pub static EGRESS4: LpmTrie<Lpm4, RuleSet> = LpmTrie::pinned(RULE_PREFIX_ENTRIES, 0);

#[map(name = "iotf1_egress6")]
pub static EGRESS6: LpmTrie<Lpm6, RuleSet> = LpmTrie::pinned(RULE_PREFIX_ENTRIES, 0);

/// Inbound allowances: (generation, profile, remote source prefix) -> device ports.
#[map(name = "iotf1_inbound4")]
pub static INBOUND4: LpmTrie<Lpm4, RuleSet> = LpmTrie::pinned(RULE_PREFIX_ENTRIES, 0);

#[map(name = "iotf1_inbound6")]
pub static INBOUND6: LpmTrie<Lpm6, RuleSet> = LpmTrie::pinned(RULE_PREFIX_ENTRIES, 0);

/// Addresses learned from DNS answers, per device, with per-rule expiry.
#[map(name = "iotf1_learned")]
pub static LEARNED: HashMap<LearnedKey, LearnedRules> = HashMap::pinned(LEARNED_ENTRIES, 0);

/// Live flows (and fragment trains) keyed from the device's side.
#[map(name = "iotf1_flows")]
pub static FLOWS: LruHashMap<FlowKey, FlowValue> = LruHashMap::pinned(FLOW_ENTRIES, 0);

/// Packets and bytes by (device, verdict, reason); see `reason::counter_index`.
#[map(name = "iotf1_counters")]
pub static COUNTERS: PerCpuArray<Counter> = PerCpuArray::pinned(COUNTER_ENTRIES, 0);

/// Counters that belong to no device (events sent, ring buffer full, ...).
#[map(name = "iotf1_global")]
pub static GLOBAL: PerCpuArray<u64> = PerCpuArray::pinned(GLOBAL_COUNTERS, 0);

/// Violation-event rate limiter state of unknown devices, by source MAC.
#[map(name = "iotf1_rate_mac")]
pub static RATE_MAC: LruHashMap<MacKey, RateState> = LruHashMap::pinned(RATE_MACS, 0);

/// Violation-event rate limiter state, by device id.
#[map(name = "iotf1_rate")]
pub static RATE: Array<RateState> = Array::pinned(MAX_DEVICES, 0);

/// Per-CPU working memory for one packet: the headers and lookup keys do not
/// fit the 512-byte BPF stack together. Slot 0: egress decision, slot 1:
/// inbound observation (different hooks may nest on one CPU).
#[map(name = "iotf1_scratch")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(2, 0);

/// Violation events to the daemon.
#[map(name = "iotf1_events")]
pub static EVENTS: RingBuf = RingBuf::pinned(EVENT_RING_BYTES, 0);

/// Resolvers whose answers are held and learned from (v4-mapped addresses).
#[map(name = "iotf1_resolvers")]
pub static RESOLVERS: HashMap<[u8; 16], u32> = HashMap::pinned(RESOLVER_ENTRIES, 0);

/// DNS learning switches and the daemon's heartbeat (one entry).
#[map(name = "iotf1_dnsctl")]
pub static DNS_CONTROL: Array<DnsControl> = Array::pinned(1, 0);

/// DNS queries (copied) and answers (held) to the daemon, in order.
#[map(name = "iotf1_dns")]
pub static DNS_FRAMES: RingBuf = RingBuf::pinned(DNS_RING_BYTES, 0);

/// Denied packets by (device, verdict, protocol, port), for the metrics.
#[map(name = "iotf1_viol")]
pub static VIOLATIONS: LruPerCpuHashMap<ViolationKey, Counter> =
    LruPerCpuHashMap::pinned(VIOLATION_ENTRIES, 0);

/// DNS query budget (GCRA state) of each known device, by device id.
#[map(name = "iotf1_qrate")]
pub static QUERY_RATE: Array<RateState> = Array::pinned(MAX_DEVICES, 0);

/// DNS query budget of unknown devices, by source MAC: one flooding
/// stranger must not spend the others' budget.
#[map(name = "iotf1_qrate_mac")]
pub static QUERY_RATE_MAC: LruHashMap<MacKey, RateState> = LruHashMap::pinned(QUERY_RATE_MACS, 0);

/// DNS-over-TCP answer segments the daemon released, by (flow, first
/// sequence number) -> end sequence number: the router's stack counts a
/// held (dropped) segment as never sent and sends it again, which must
/// pass instead of being held once more (see `dns::classify_answer`).
#[map(name = "iotf1_resent")]
pub static TCP_RESENT: LruHashMap<ResentKey, u32> = LruHashMap::pinned(TCP_RESENT_ENTRIES, 0);

/// The router's own IPv6 addresses: neighbour discovery to them is link
/// traffic (delivered, never forwarded). Written by the daemon.
#[map(name = "iotf1_local6")]
pub static ROUTER_ADDRS: HashMap<[u8; 16], u32> = HashMap::pinned(ROUTER_ADDR_ENTRIES, 0);

/// Recent denials, per CPU, direct-mapped by what the decision read (see
/// `denied.rs`): a repeated denied packet costs one array read.
#[map(name = "iotf1_denied")]
pub static DENIED: PerCpuArray<DeniedSlot> = PerCpuArray::pinned(DENIED_SLOTS, 0);

/// The grants epoch (one entry): the daemon bumps it after every write
/// that can allow what was denied (learned addresses, a policy, the
/// router's addresses), which voids every cached denial.
#[map(name = "iotf1_grants")]
pub static GRANTS: Array<u32> = Array::pinned(1, 0);

/// Trunk interfaces (by ifindex) and the VLANs judged on them; frames of
/// other VLANs pass untouched (`trunk.rs`).
#[map(name = "iotf1_trunks")]
pub static TRUNKS: HashMap<u32, VlanSet> = HashMap::pinned(MAX_TRUNKS, 0);

/// Where redirected DNS queries go (`dns.redirect`): the configured
/// resolver for IPv4 (slot 0) and IPv6 (slot 1); all-zero for none.
#[map(name = "iotf1_dns_to")]
pub static REDIRECT_TO: Array<[u8; 16]> = Array::pinned(2, 0);

/// Redirected queries awaiting their answers, by (device address and port,
/// resolver, protocol) -> the resolver the device asked.
#[map(name = "iotf1_dnat")]
pub static REDIRECTS: LruHashMap<RedirectKey, RedirectValue> =
    LruHashMap::pinned(DNS_REDIRECT_ENTRIES, 0);

/// Redirected queries and answers rewritten back, per CPU.
#[map(name = "iotf1_redirects")]
pub static REDIRECTED: PerCpuArray<u64> = PerCpuArray::pinned(2, 0);
