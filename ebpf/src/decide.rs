//! The egress decision for a packet sent by a device, shared by the XDP and
//! the TC-ingress program: identify the device, then allow by flow, learned
//! address or static rule, in that order (cheapest common case first).

use iotfence_common::{
    consts::{
        CONFIG_READY, DEVICE_NEEDS_IP4, DEVICE_NEEDS_IP6, FLOW_KIND_CONN, FLOW_KIND_FRAGMENT,
        GLOBAL_FLOW_INSERT_FAILED, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
    },
    keys::{device_scope, rule_scope},
    reason::counter_index,
    values::{FlowValue, LearnedMatch},
    Config, Counter, DeviceInfo, FlowKey, Mode, Reason, Verdict, ViolationKey,
};

use crate::{
    clock, dns, events,
    maps::{
        CONFIG, COUNTERS, DEFAULT_DEVICE, DEVICE_BIND, DEVICE_BY_IP4, DEVICE_BY_IP6, DEVICE_BY_MAC,
        EGRESS4, EGRESS6, FLOWS, LEARNED, ROUTER_ADDRS, SCRATCH, VIOLATIONS,
    },
    parse::{is_link_icmpv6, parse, Bytes, Frag, Headers, Scratch},
};

/// A flow's last-seen time is rewritten at most this often, so that busy
/// flows do not bounce the entry's cache line between CPUs on every packet.
const FLOW_REFRESH_NS: u64 = 1_000_000_000;

pub enum Action {
    Pass,
    /// Pass, and copy the frame to the daemon: a DNS query by this device.
    PassQuery(u32),
    Drop,
}

/// Judges one device-originated packet, counts it, and reports violations.
#[inline(always)]
pub fn judge(b: &Bytes, len: u64) -> Action {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return Action::Drop;
    };
    let s = unsafe { &mut *s };
    s.h.reset();
    let cfg = match CONFIG.get(0) {
        Some(c) if c.flags & CONFIG_READY != 0 => c,
        // No complete policy yet: fail closed for IP, keep the link (ARP) up.
        _ => {
            return match parse(b, &mut s.h) {
                Ok(()) if s.h.family == 0 => Action::Pass,
                _ => Action::Drop,
            };
        }
    };
    let generation = (cfg.generation & 1) as u8;
    let parsed = parse(b, &mut s.h);
    // One clock read per packet, for every deadline this packet meets.
    let now = clock::now();
    // Most packets belong to a live flow: one lookup settles them, and the
    // flow names its device (identified when the flow opened).
    if parsed.is_ok() && s.h.family != 0 {
        if let Some((device, reason)) = established(cfg, s, now) {
            count(device, Verdict::Allowed, reason, len);
            return pass(s, device, now);
        }
    }
    let dev = identify(generation, s, false);
    let reason = match parsed {
        Err(reason) => reason,
        Ok(()) => decide(generation, &dev, s, now),
    };
    let verdict = if reason.allows() {
        Verdict::Allowed
    } else if dev.mode == Mode::Audit as u8 {
        Verdict::Audited
    } else {
        Verdict::Dropped
    };
    count(dev.device, verdict, reason, len);
    if verdict != Verdict::Allowed {
        count_violation(dev.device, verdict, &s.h, len);
        s.mac.generation = 0;
        s.mac._pad = 0;
        s.mac.mac = s.h.src_mac;
        events::report(cfg, &dev, &s.h, &s.mac, verdict, reason, now);
    }
    match verdict {
        Verdict::Dropped => Action::Drop,
        _ => pass(s, dev.device, now),
    }
}

/// The device that sent `b` when it is a DNS query to a resolver (for
/// `iotfence_tc_q`, after the XDP judge passed it): identified as the judge
/// identifies it.
#[inline(always)]
pub fn query_sender(b: &Bytes) -> Option<u32> {
    let cfg = CONFIG.get(0)?;
    if cfg.flags & CONFIG_READY == 0 {
        return None;
    }
    let s = unsafe { &mut *SCRATCH.get_ptr_mut(0)? };
    s.h.reset();
    if parse(b, &mut s.h).is_err() || !dns::is_query(&s.h) {
        return None;
    }
    let device = identify((cfg.generation & 1) as u8, s, false).device;
    query_budget(s, device, clock::now()).then_some(device)
}

#[inline(always)]
fn pass(s: &mut Scratch, device: u32, now: u64) -> Action {
    if dns::is_query(&s.h) && query_budget(s, device, now) {
        Action::PassQuery(device)
    } else {
        Action::Pass
    }
}

/// `dns::query_budget` of the sender; the MAC key is built in the scratch.
#[inline(always)]
fn query_budget(s: &mut Scratch, device: u32, now: u64) -> bool {
    s.mac.generation = 0;
    s.mac._pad = 0;
    s.mac.mac = s.h.src_mac;
    dns::query_budget(device, &s.mac, now)
}

/// A packet of a live flow or of a fragment train a live flow started,
/// sent from the MAC that opened it: the flow's device and the reason.
/// Refreshes the flow. From another MAC it is judged as its sender.
#[inline(always)]
fn established(cfg: &Config, s: &mut Scratch, now: u64) -> Option<(u32, Reason)> {
    let h = &s.h;
    if h.frag == Frag::Later {
        fragment_key(h, &mut s.flow);
        let device = flow_alive(cfg, &s.flow, h, now)?;
        return Some((device, Reason::Fragment));
    }
    if !h.flow {
        return None;
    }
    flow_key(h, &mut s.flow);
    let device = flow_alive(cfg, &s.flow, h, now)?;
    remember_fragments(s, device, now);
    Some((device, Reason::Flow))
}

/// The decision for a packet no live flow covers.
#[inline(always)]
fn decide(generation: u8, dev: &DeviceInfo, s: &mut Scratch, now: u64) -> Reason {
    let h = &s.h;
    if h.family == 0 {
        return Reason::NotIp;
    }
    if is_link_icmpv6(h, || unsafe { ROUTER_ADDRS.get(&h.dst) }.is_some()) {
        return Reason::NeighborDiscovery;
    }
    if h.frag == Frag::Later {
        // `established` found no train for it.
        return Reason::UnknownFragment;
    }
    s.learned.device = dev.device;
    s.learned.addr = h.dst;
    let mut expired = false;
    if let Some(rules) = unsafe { LEARNED.get(&s.learned) } {
        match rules.check(h.proto, h.rule_port, now) {
            LearnedMatch::Allowed => {
                open_flow(s, dev.device, now);
                return Reason::Learned;
            }
            LearnedMatch::Expired => expired = true,
            LearnedMatch::None => {}
        }
    }
    let dst = h.dst;
    let rules = s.lpm(rule_scope(generation, dev.profile), dst, &EGRESS4, &EGRESS6);
    if let Some(rules) = rules {
        if rules.allows(s.h.proto, s.h.rule_port) {
            open_flow(s, dev.device, now);
            return Reason::Rule;
        }
    }
    if expired {
        Reason::Expired
    } else {
        Reason::NotAllowed
    }
}

/// The device behind a packet: by MAC, then by address or prefix, else the
/// default record. A device listed with a MAC and addresses of the packet's
/// family (`DEVICE_NEEDS_IP*`) is itself only when both match: its MAC from
/// another address, or its address from another MAC, is the default
/// record. `towards` selects the destination (packets to a device) instead
/// of the source.
#[inline(always)]
pub fn identify(generation: u8, s: &mut Scratch, towards: bool) -> DeviceInfo {
    let h = &s.h;
    s.mac.generation = generation;
    s.mac._pad = 0;
    s.mac.mac = if towards { h.dst_mac } else { h.src_mac };
    let family_bit = match h.family {
        4 => DEVICE_NEEDS_IP4,
        6 => DEVICE_NEEDS_IP6,
        _ => 0,
    };
    // (found, record) pairs, zeroed when not found: an `Option` would leave
    // its payload undefined, and the verifier refuses reading that.
    let (mac_found, m) = match unsafe { DEVICE_BY_MAC.get(&s.mac) } {
        Some(d) => (true, *d),
        None => (false, DeviceInfo::default()),
    };
    if mac_found && m.flags & family_bit == 0 {
        return m;
    }
    let addr = if towards { h.dst } else { h.src };
    if mac_found {
        // Bound: one of its host addresses (a hash lookup), else, if it
        // listed CIDRs of this family, one of those (the trie, below).
        s.bind.mac = s.mac;
        s.bind.addr = addr;
        if unsafe { DEVICE_BIND.get(&s.bind) }.is_some() {
            return m;
        }
        // DEVICE_PREFIX_IP4/6 sit two bits above DEVICE_NEEDS_IP4/6.
        if m.flags & (family_bit << 2) == 0 {
            return default_device(generation);
        }
    }
    let by_ip = match h.family {
        0 => None,
        _ => s.lpm(
            device_scope(generation),
            addr,
            &DEVICE_BY_IP4,
            &DEVICE_BY_IP6,
        ),
    };
    let (ip_found, i) = match by_ip {
        Some(d) => (true, *d),
        None => (false, DeviceInfo::default()),
    };
    if ip_found {
        // Bound: the address must be one of the MAC's device; and an
        // address of a MAC-bound device counts only from that MAC.
        if mac_found {
            if i.device == m.device {
                return m;
            }
        } else if i.flags & family_bit == 0 {
            return i;
        }
    }
    default_device(generation)
}

#[inline(always)]
fn default_device(generation: u8) -> DeviceInfo {
    match DEFAULT_DEVICE.get(generation as u32) {
        Some(d) => *d,
        None => DeviceInfo::default(),
    }
}

#[inline(always)]
fn flow_key(h: &Headers, k: &mut FlowKey) {
    k.src = h.src;
    k.dst = h.dst;
    k.sport = h.sport;
    k.dport = h.dport;
    k.proto = h.proto;
    k.kind = FLOW_KIND_CONN;
    k._pad = [0; 2];
}

#[inline(always)]
fn fragment_key(h: &Headers, k: &mut FlowKey) {
    k.src = h.src;
    k.dst = h.dst;
    k.sport = (h.frag_id >> 16) as u16;
    k.dport = h.frag_id as u16;
    k.proto = h.proto;
    k.kind = FLOW_KIND_FRAGMENT;
    k._pad = [0; 2];
}

#[inline(always)]
fn idle_timeout(cfg: &Config, proto: u8) -> u64 {
    match proto {
        PROTO_TCP => cfg.tcp_idle_ns,
        PROTO_UDP => cfg.udp_idle_ns,
        PROTO_ICMP | PROTO_ICMPV6 => cfg.icmp_idle_ns,
        _ => cfg.other_idle_ns,
    }
}

/// The flow's device when the flow exists, was opened from this packet's
/// source MAC and has not been idle too long; refreshes it.
#[inline(always)]
fn flow_alive(cfg: &Config, key: &FlowKey, h: &Headers, now: u64) -> Option<u32> {
    let v = FLOWS.get_ptr_mut(key)?;
    let (last, device, mac) = unsafe { ((*v).last_seen_ns, (*v).device, (*v).mac) };
    if !same_mac(&mac, &h.src_mac) {
        return None;
    }
    let idle = now.wrapping_sub(last);
    if idle > idle_timeout(cfg, h.proto) {
        return None;
    }
    if idle > FLOW_REFRESH_NS {
        unsafe { (*v).last_seen_ns = now };
    }
    Some(device)
}

/// Branch-free and without `bcmp` (which BPF has no helper for).
#[inline(always)]
pub fn same_mac(a: &[u8; 6], b: &[u8; 6]) -> bool {
    ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5]))
        == 0
}

/// Records an allowed packet's flow, and its fragment train if it is a
/// first fragment, so the rest of the connection survives rule expiry.
#[inline(always)]
fn open_flow(s: &mut Scratch, device: u32, now: u64) {
    if s.h.flow {
        insert_flow(s, device, s.h.src_mac, now, 0);
    }
    remember_fragments(s, device, now);
}

#[inline(always)]
fn remember_fragments(s: &mut Scratch, device: u32, now: u64) {
    if s.h.frag == Frag::First {
        fragment_key(&s.h, &mut s.flow);
        insert_flow(s, device, s.h.src_mac, now, 0);
    }
}

/// Inserts `s.flow` for `device` at `mac`; the value is built in the
/// scratch too (see `Scratch`).
#[inline(always)]
pub fn insert_flow(s: &mut Scratch, device: u32, mac: [u8; 6], now: u64, inbound: u8) {
    s.flow_value = FlowValue {
        last_seen_ns: now,
        device,
        inbound,
        _pad: 0,
        mac,
        _pad2: [0; 4],
    };
    if FLOWS.insert(&s.flow, &s.flow_value, 0).is_err() {
        events::global_add(GLOBAL_FLOW_INSERT_FAILED);
    }
}

/// Per-CPU value, so an existing key is bumped without atomics; a new key
/// costs one insert (an LRU map evicts the coldest key when full).
#[inline(always)]
fn count_violation(device: u32, verdict: Verdict, h: &Headers, len: u64) {
    let key = ViolationKey {
        device,
        port: h.rule_port,
        proto: h.proto,
        verdict: verdict as u8,
    };
    match VIOLATIONS.get_ptr_mut(&key) {
        Some(c) => unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        },
        None => {
            let _ = VIOLATIONS.insert(
                &key,
                &Counter {
                    packets: 1,
                    bytes: len,
                },
                0,
            );
        }
    }
}

#[inline(always)]
fn count(device: u32, verdict: Verdict, reason: Reason, len: u64) {
    if let Some(c) = COUNTERS.get_ptr_mut(counter_index(device, verdict, reason)) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}
