//! Capacities, map names and protocol numbers: the one place to change them.

/// The `iotf{MAP_VERSION}_` prefix every map name carries (a test checks
/// each name in the object). A layout change needs no bump: the daemon
/// compares adopted pins with the object's own map definitions and refuses
/// a mismatch (the learned map, which it rebuilds from saved state, it
/// replaces instead: `kernel::maps::replace_rebuilt`). Bump it (and rename the maps) for a change of meaning that
/// keeps every size, so old pins are left alone instead of misread.
pub const MAP_VERSION: u32 = 1;

/// Device ids are indices into the counter array. Id 0 is "unknown device"
/// (judged by the default profile). This is the default device capacity
/// (`max_devices` in the configuration): the object's device-indexed maps
/// are defined with it and the daemon resizes them at load
/// (`DEVICE_MAPS`), so a policy holds up to `max_devices - 1` devices.
pub const MAX_DEVICES: u32 = 2048;
/// Bounds of `max_devices`. The largest keeps `COUNTER_ENTRIES` far from
/// u32 overflow and a per-CPU counter array a kernel will allocate.
pub const MIN_DEVICE_CAPACITY: u32 = 16;
pub const MAX_DEVICE_CAPACITY: u32 = 65_536;
/// Profile ids must fit the 16-bit profile part of a rule scope.
pub const MAX_PROFILES: u32 = 4096;
/// (protocol, port range) entries one destination prefix may carry.
pub const RULES_PER_PREFIX: usize = 16;
/// (protocol, port range, expiry) entries one learned address may carry:
/// four keep a learned entry at 128 bytes of kernel memory (`LearnedRules`).
pub const LEARNED_RULES_PER_ADDR: usize = 4;

/// Default capacities; the daemon may change them at load time
/// (`EbpfLoader::map_max_entries`) except where noted.
pub const DEVICE_MAC_ENTRIES: u32 = 2 * MAX_DEVICES; // two generations
pub const DEVICE_PREFIX_ENTRIES: u32 = 2 * MAX_DEVICES;
pub const RULE_PREFIX_ENTRIES: u32 = 65_536;
pub const LEARNED_ENTRIES: u32 = 131_072;
/// Upper bound of `dns.max_entries`, which sizes the learned map at load
/// (the kernel preallocates it: 128 bytes per entry, see `LearnedRules`).
pub const MAX_LEARNED_ENTRIES: u32 = 4_194_304;
pub const FLOW_ENTRIES: u32 = 262_144;
pub const EVENT_RING_BYTES: u32 = 256 * 1024;
/// DNS frames in flight to the daemon (about 2,000 held answers).
pub const DNS_RING_BYTES: u32 = 4 * 1024 * 1024;
/// (device, verdict, protocol, port) violation counters; least recently
/// used ones are evicted, which bounds the metric's label sets.
pub const VIOLATION_ENTRIES: u32 = 16_384;
/// Slots of the per-CPU denial cache (`iotf1_denied`), a power of two:
/// direct-mapped, so 200 flooding (device, destination) pairs collide in
/// ~5 % of slots; 96 bytes each, per CPU.
pub const DENIED_SLOTS: u32 = 2048;
/// Trusted resolver addresses (v4-mapped for IPv4).
pub const RESOLVER_ENTRIES: u32 = 64;
/// The router's own IPv6 addresses the datapath knows (see `ROUTER_ADDRS`).
pub const ROUTER_ADDR_ENTRIES: u32 = 256;
/// DNS-over-TCP answer segments released by the daemon, remembered so the
/// stack's retransmission of one passes (least recently used forgotten).
pub const TCP_RESENT_ENTRIES: u32 = 4096;
/// Redirected DNS queries whose answers are awaited (`dns.redirect`); the
/// least recently used is forgotten, its answer then delivered from the
/// configured resolver's address (which the device ignores, and retries).
pub const DNS_REDIRECT_ENTRIES: u32 = 8192;
/// Unknown devices (by source MAC) with a violation-event budget of their
/// own; the least recently seen is forgotten (and starts with a full one).
pub const RATE_MACS: u32 = 4096;
/// Unknown devices (by source MAC) with a DNS query budget of their own;
/// the least recently seen is forgotten (and starts with a full budget).
pub const QUERY_RATE_MACS: u32 = 4096;

/// Counter slots: one per (verdict, reason) for every device.
pub const COUNTER_SLOTS_PER_DEVICE: u32 = 3 * 16;
pub const COUNTER_ENTRIES: u32 = MAX_DEVICES * COUNTER_SLOTS_PER_DEVICE;

/// The maps sized by the device capacity, with their entries per device
/// (the object defines them for `MAX_DEVICES`; the daemon resizes them).
pub const DEVICE_MAPS: [(&str, u32); 7] = [
    (map_names::COUNTERS, COUNTER_SLOTS_PER_DEVICE),
    (map_names::RATE, 1),
    (map_names::QUERY_RATE, 1),
    // Two policy generations each.
    (map_names::DEVICE_BY_MAC, 2),
    (map_names::DEVICE_BIND, 2),
    (map_names::DEVICE_BY_IP4, 2),
    (map_names::DEVICE_BY_IP6, 2),
];

/// Entries of map `name` for a device capacity of `devices`, when the
/// capacity sizes it.
pub fn device_map_entries(name: &str, devices: u32) -> Option<u32> {
    DEVICE_MAPS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, per_device)| per_device * devices)
}

/// Slots of the global per-CPU counter array (`global::Global` names them;
/// room to grow without a layout change).
pub const GLOBAL_COUNTERS: u32 = 16;

/// Map names: project prefix, layout version, purpose (kernel limit: 15 bytes).
pub mod map_names {
    pub const CONFIG: &str = "iotf1_config";
    pub const DEFAULT_DEVICE: &str = "iotf1_dev_dflt";
    pub const DEVICE_BY_MAC: &str = "iotf1_dev_mac";
    pub const DEVICE_BY_IP4: &str = "iotf1_dev_ip4";
    pub const DEVICE_BY_IP6: &str = "iotf1_dev_ip6";
    pub const EGRESS4: &str = "iotf1_egress4";
    pub const EGRESS6: &str = "iotf1_egress6";
    pub const INBOUND4: &str = "iotf1_inbound4";
    pub const INBOUND6: &str = "iotf1_inbound6";
    pub const LEARNED: &str = "iotf1_learned";
    pub const FLOWS: &str = "iotf1_flows";
    pub const COUNTERS: &str = "iotf1_counters";
    pub const GLOBAL: &str = "iotf1_global";
    pub const RATE: &str = "iotf1_rate";
    pub const EVENTS: &str = "iotf1_events";
    pub const RESOLVERS: &str = "iotf1_resolvers";
    pub const DNS_CONTROL: &str = "iotf1_dnsctl";
    pub const DNS_FRAMES: &str = "iotf1_dns";
    pub const VIOLATIONS: &str = "iotf1_viol";
    pub const QUERY_RATE: &str = "iotf1_qrate";
    pub const DEVICE_BIND: &str = "iotf1_dev_bind";
    pub const QUERY_RATE_MAC: &str = "iotf1_qrate_mac";
    pub const TCP_RESENT: &str = "iotf1_resent";
    pub const ROUTER_ADDRS: &str = "iotf1_local6";
    pub const RATE_MAC: &str = "iotf1_rate_mac";
    pub const DENIED: &str = "iotf1_denied";
    pub const GRANTS: &str = "iotf1_grants";
    pub const TRUNKS: &str = "iotf1_trunks";
    pub const REDIRECT_TO: &str = "iotf1_dns_to";
    pub const REDIRECTS: &str = "iotf1_dnat";
    pub const REDIRECTED: &str = "iotf1_redirects";

    /// Every map, for pinning checks and `iotfence detach`.
    pub const ALL: [&str; 31] = [
        CONFIG,
        DEFAULT_DEVICE,
        DEVICE_BY_MAC,
        DEVICE_BY_IP4,
        DEVICE_BY_IP6,
        EGRESS4,
        EGRESS6,
        INBOUND4,
        INBOUND6,
        LEARNED,
        FLOWS,
        COUNTERS,
        GLOBAL,
        RATE,
        EVENTS,
        RESOLVERS,
        DNS_CONTROL,
        DNS_FRAMES,
        VIOLATIONS,
        QUERY_RATE,
        QUERY_RATE_MAC,
        DEVICE_BIND,
        TCP_RESENT,
        ROUTER_ADDRS,
        RATE_MAC,
        DENIED,
        GRANTS,
        TRUNKS,
        REDIRECT_TO,
        REDIRECTS,
        REDIRECTED,
    ];
}

/// Program names as the kernel and `bpftool prog` show them (kernel limit:
/// 15 bytes), by direction relative to the device. Pins of programs are
/// refreshed on every attach and links are pinned by hook, so a rename
/// adopts the running attachments (see `kernel::load`).
pub mod prog_names {
    /// The judge, as XDP.
    pub const XDP: &str = "from_device_xdp";
    /// The judge, as TC ingress.
    pub const TC_INGRESS: &str = "from_device_tc";
    /// The observer at TC egress: inbound flows, held DNS answers.
    pub const TC_EGRESS: &str = "to_device_tc";
    /// TC ingress beside the XDP judge: copies DNS queries on kernels
    /// before 5.18, and rewrites redirected ones (`dns.redirect`).
    pub const TC_QUERIES: &str = "from_device_dns";
    /// Every program of the object.
    pub const ALL: [&str; 4] = [XDP, TC_INGRESS, TC_EGRESS, TC_QUERIES];
}

/// Protocol value in a rule that matches every IP protocol.
pub const PROTO_ANY: u8 = 255;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

/// Ethertypes the parsers (kernel and daemon) read.
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

/// The name policies, labels and events use for an IP protocol number, for
/// the ones that have one (`None`: shown as the number).
pub const fn protocol_name(proto: u8) -> Option<&'static str> {
    match proto {
        PROTO_TCP => Some("tcp"),
        PROTO_UDP => Some("udp"),
        PROTO_ICMP => Some("icmp"),
        PROTO_ICMPV6 => Some("icmpv6"),
        PROTO_SCTP => Some("sctp"),
        _ => None,
    }
}

/// `Config::flags`: the daemon has written a complete policy generation.
pub const CONFIG_READY: u32 = 1;
/// `Config::flags`: some interface is a trunk (`iotf1_trunks` has entries):
/// only then is the interface looked up per packet.
pub const CONFIG_TRUNKS: u32 = 2;

/// Trunk interfaces with a VLAN filter (`vlans:` in the configuration).
pub const MAX_TRUNKS: u32 = 64;

/// `DeviceInfo::flags`: the device's MAC matches only from one of its
/// IPv4 (IPv6) addresses, and those addresses only from its MAC.
pub const DEVICE_NEEDS_IP4: u8 = 1;
pub const DEVICE_NEEDS_IP6: u8 = 1 << 1;
/// The bound device listed CIDRs of that family (not only host addresses):
/// an address not in the exact bindings is looked up in the device trie.
pub const DEVICE_PREFIX_IP4: u8 = 1 << 2;
pub const DEVICE_PREFIX_IP6: u8 = 1 << 3;
/// The device is being learned (`iotfence learn`, its profile audits
/// everything): the first packet of each flow is reported past the event
/// rate limit and opens the flow, so the daemon sees every (destination,
/// protocol, port) the device uses, once per flow.
pub const DEVICE_LEARNING: u8 = 1 << 4;

/// `RESOLVERS` values: answers from this resolver are held and learned.
pub const RESOLVER_TRUSTED: u32 = 1;
/// The resolver is an address of the router itself: its answers are
/// trusted only when the router's own stack sent them (an answer routed in
/// from outside with that source address is forged).
pub const RESOLVER_ON_ROUTER: u32 = 1 << 1;

/// TCP header flags the datapath reads.
pub const TCP_FLAG_SYN: u8 = 0x02;
pub const TCP_FLAG_ACK: u8 = 0x10;

/// `FlowKey::kind`.
pub const FLOW_KIND_CONN: u8 = 0;
/// Fragments of an allowed first fragment: `sport:dport` hold the IP id.
pub const FLOW_KIND_FRAGMENT: u8 = 1;

/// Upper bound of IPv6 extension headers walked before giving up (drop).
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Kernel features the programs use where the kernel has them, chosen at
/// load time: the daemon probes the kernel and writes the bits into the
/// object's read-only global `IOTF_FEATURES` (`features::GLOBAL`). The
/// verifier sees the frozen value as a constant and removes the branches
/// not taken, so a helper an old kernel lacks is never even looked at.
pub mod features {
    /// Name of the global in the eBPF object.
    pub const GLOBAL: &str = "IOTF_FEATURES";
    /// `bpf_ktime_get_coarse_ns` (5.11): deadlines read the tick-cached
    /// clock; else `bpf_ktime_get_ns`.
    pub const COARSE_CLOCK: u32 = 1;
    /// `bpf_xdp_load_bytes` (5.18): the XDP program copies DNS queries;
    /// else `iotfence_tc_q` copies them at TC ingress.
    pub const XDP_LOAD_BYTES: u32 = 1 << 1;
    /// `dns.redirect` is on (`ebpf/src/redirect.rs`): a load-time bit, so
    /// that with it off (the default) the verifier prunes the redirect's
    /// paths and no packet pays for them.
    pub const DNS_REDIRECT: u32 = 1 << 2;
    /// Globals with each device's DNS query budget (GCRA emission interval
    /// and burst tolerance, ns), from `dns.queries_per_second` and
    /// `dns.query_burst`.
    pub const QUERY_INTERVAL: &str = "IOTF_QUERY_INTERVAL_NS";
    pub const QUERY_BURST: &str = "IOTF_QUERY_BURST_NS";
}
