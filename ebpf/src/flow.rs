//! The flow table, as seen from the device: keys for connections and
//! fragment trains, liveness (idle timeouts, the MAC that opened a flow),
//! and inserts.

use iotfence_common::{
    consts::{FLOW_KIND_CONN, FLOW_KIND_FRAGMENT, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    values::FlowValue,
    Config, FlowKey, Global,
};

use crate::{
    events,
    maps::FLOWS,
    parse::{Frag, Headers},
    scratch::Scratch,
};

/// A flow's last-seen time is rewritten at most this often, so that busy
/// flows do not bounce the entry's cache line between CPUs on every packet.
pub const FLOW_REFRESH_NS: u64 = 1_000_000_000;

#[inline(always)]
pub fn flow_key(h: &Headers, k: &mut FlowKey) {
    k.src = h.src;
    k.dst = h.dst;
    k.sport = h.sport;
    k.dport = h.dport;
    k.proto = h.proto;
    k.kind = FLOW_KIND_CONN;
    k._pad = [0; 2];
}

/// The key of the flow a packet towards the device belongs to: seen from
/// the device, its address and port are the source. An ICMP echo keeps
/// its identifier in `sport` both ways.
#[inline(always)]
pub fn reply_key(h: &Headers, k: &mut FlowKey) {
    k.src = h.dst;
    k.dst = h.src;
    k.sport = if h.echo { h.sport } else { h.dport };
    k.dport = if h.echo { 0 } else { h.sport };
    k.proto = h.proto;
    k.kind = FLOW_KIND_CONN;
    k._pad = [0; 2];
}

#[inline(always)]
pub fn fragment_key(h: &Headers, k: &mut FlowKey) {
    k.src = h.src;
    k.dst = h.dst;
    k.sport = (h.frag_id >> 16) as u16;
    k.dport = h.frag_id as u16;
    k.proto = h.proto;
    k.kind = FLOW_KIND_FRAGMENT;
    k._pad = [0; 2];
}

#[inline(always)]
pub fn idle_timeout(cfg: &Config, proto: u8) -> u64 {
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
pub fn flow_alive(cfg: &Config, key: &FlowKey, h: &Headers, now: u64) -> Option<u32> {
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
pub fn open_flow(s: &mut Scratch, device: u32, now: u64) {
    if s.h.flow {
        insert_flow(s, device, s.h.src_mac, now, 0);
    }
    remember_fragments(s, device, now);
}

#[inline(always)]
pub fn remember_fragments(s: &mut Scratch, device: u32, now: u64) {
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
        events::global_add(Global::FlowInsertFailed);
    }
}
