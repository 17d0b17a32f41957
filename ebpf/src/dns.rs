//! DNS learning in the kernel: copy the queries devices send to trusted
//! resolvers, and hold the answers those resolvers send back until the
//! daemon has put their addresses into the learned map and re-injected the
//! frame (marked, so this program lets it go the second time). A device can
//! therefore never connect before its answer's addresses are allowed.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use iotfence_common::{
    consts::{FLOW_KIND_CONN, PROTO_TCP, PROTO_UDP, RESOLVER_ON_ROUTER},
    dns::{DnsFrame, DNS_FAIL_OPEN, DNS_FRAME_MAX, DNS_KIND_ANSWER, DNS_KIND_QUERY, DNS_LEARNING},
    Global, MacKey, RateState,
};

use crate::{
    events::global_add,
    features,
    maps::{DNS_CONTROL, DNS_FRAMES, QUERY_RATE, QUERY_RATE_MAC, RESOLVERS, TCP_RESENT},
    parse::{Frag, Headers},
    scratch::Scratch,
};

const DNS_PORT: u16 = 53;

/// What the egress program does with a frame towards a device.
pub enum Answer {
    /// Not a DNS answer we learn from: deliver.
    Pass,
    /// Deliver, but it could not be held (counted): fragment, GSO, oversize.
    Unheld,
    /// Hold for the daemon (device id).
    Hold(u32),
    /// Forged: claims a resolver on the router but was routed in (drop).
    Forged,
}

#[inline(always)]
fn learning() -> bool {
    match DNS_CONTROL.get(0) {
        Some(c) => c.flags & DNS_LEARNING != 0,
        None => false,
    }
}

/// True for a TCP/UDP packet with DNS payload on the resolver's side of
/// `port` (destination for queries, source for answers).
#[inline(always)]
fn carries_dns(h: &Headers, port: u16) -> bool {
    port == DNS_PORT && (h.proto == PROTO_UDP || (h.proto == PROTO_TCP && h.payload_len > 0))
}

/// Whether an allowed packet from a device is a query the daemon must see.
#[inline(always)]
pub fn is_query(h: &Headers) -> bool {
    carries_dns(h, h.dport)
        && h.frag == Frag::None
        && learning()
        && unsafe { RESOLVERS.get(&h.dst) }.is_some()
}

/// Whether `device` (for unknown devices, the sender's MAC in `mac`) may
/// have one more query copied: a GCRA per sender, so a device flooding
/// DNS-shaped frames fills neither the ring nor the daemon's time, and
/// every other device's lookups go on. Over budget, the query still goes
/// to the resolver, uncopied: its answer then teaches nothing.
#[inline(always)]
pub fn query_budget(device: u32, mac: &MacKey, now: u64) -> bool {
    let state = if device != 0 {
        QUERY_RATE.get_ptr_mut(device)
    } else {
        match QUERY_RATE_MAC.get_ptr_mut(mac) {
            Some(p) => Some(p),
            None => {
                let fresh = RateState::default();
                let _ = QUERY_RATE_MAC.insert(mac, &fresh, 0);
                QUERY_RATE_MAC.get_ptr_mut(mac)
            }
        }
    };
    let Some(state) = state else {
        return false;
    };
    let state = unsafe { &mut *state };
    let tat = if state.tat_ns > now {
        state.tat_ns
    } else {
        now
    };
    if tat - now > features::query_burst_ns() {
        global_add(Global::DnsQueryBudget);
        return false;
    }
    state.tat_ns = tat + features::query_interval_ns();
    true
}

/// An answer the daemon re-injects after learning from it (its skb mark).
#[inline(always)]
pub fn reinjected(mark: u32) -> bool {
    match DNS_CONTROL.get(0) {
        Some(c) => c.reinject_mark != 0 && mark == c.reinject_mark,
        None => false,
    }
}

/// Classifies a frame the router sends towards device `device`;
/// `from_stack`: the router's own stack sent it.
///
/// The question an answer is matched to (client, port, resolver, id) is
/// chosen by the device, so a compromised device's accomplice who can send
/// packets with the resolver's source address could answer for it. A
/// resolver on the router speaks only through the router's own stack: a
/// frame with its address that was routed in is forged, and dropped.
#[inline(always)]
pub fn classify_answer(s: &mut Scratch, device: u32, from_stack: bool) -> Answer {
    let h = &s.h;
    if !carries_dns(h, h.sport) || !learning() {
        return Answer::Pass;
    }
    let Some(flags) = (unsafe { RESOLVERS.get(&h.src) }) else {
        return Answer::Pass;
    };
    if *flags & RESOLVER_ON_ROUTER != 0 && !from_stack {
        global_add(Global::DnsSpoofed);
        return Answer::Forged;
    }
    if h.frag != Frag::None {
        global_add(Global::DnsUnheld);
        return Answer::Unheld;
    }
    if h.proto == PROTO_TCP && resent(s) {
        global_add(Global::DnsTcpResent);
        return Answer::Pass;
    }
    Answer::Hold(device)
}

/// Whether this TCP segment lies within one the daemon already released.
/// A held segment is dropped at egress, so the router's TCP stack counts
/// it as never sent, ignores the client's ACK of the copy the daemon
/// released, and sends the segment again (and again: 15 times over 7 s,
/// each held and released anew). The daemon records each release; the
/// first re-send then passes, and the connection goes on.
#[inline(always)]
fn resent(s: &mut Scratch) -> bool {
    let h = &s.h;
    let k = &mut s.resent;
    // As seen from the device (see `FlowKey`).
    k.flow.src = h.dst;
    k.flow.dst = h.src;
    k.flow.sport = h.dport;
    k.flow.dport = h.sport;
    k.flow.proto = h.proto;
    k.flow.kind = FLOW_KIND_CONN;
    k.flow._pad = [0; 2];
    k.seq = h.tcp_seq;
    let end = h.tcp_seq.wrapping_add(h.payload_len as u32);
    match unsafe { TCP_RESENT.get(&s.resent) } {
        // Sequence numbers wrap: compare by difference.
        Some(released_end) => released_end.wrapping_sub(end) as i32 >= 0,
        None => false,
    }
}

/// Holds an answer: returns true when the frame is now the daemon's (drop
/// it here) and false when it must be delivered as is.
#[inline(always)]
/// `asked`: the answer is to a redirected query, to be released with this
/// source address (see `DnsFrame::asked`).
pub fn hold(
    device: u32,
    ifindex: u32,
    len: u32,
    gso_segs: u32,
    asked: Option<&[u8; 16]>,
    load: impl Fn(*mut u8, u32) -> i64,
) -> bool {
    let Some(ctl) = DNS_CONTROL.get(0) else {
        return false;
    };
    let now = unsafe { bpf_ktime_get_ns() };
    if now > ctl.alive_until_ns {
        // Nobody would re-inject it.
        if ctl.flags & DNS_FAIL_OPEN != 0 {
            global_add(Global::DnsFailOpen);
            return false;
        }
        global_add(Global::DnsNoDaemon);
        return true;
    }
    if len == 0 || len as usize >= DNS_FRAME_MAX || gso_segs > 1 {
        global_add(Global::DnsUnheld);
        return false;
    }
    if !copy(DNS_KIND_ANSWER, device, ifindex, len, now, asked, load) {
        // Dropped: the resolver's client retries, and delivering it
        // unlearned would break the no-first-packet-drop promise.
        global_add(Global::DnsRingFull);
        return true;
    }
    global_add(Global::DnsHeld);
    true
}

/// Copies a query for the daemon; the query itself goes on.
#[inline(always)]
pub fn copy_query(device: u32, ifindex: u32, len: u32, load: impl Fn(*mut u8, u32) -> i64) {
    if len == 0 || len as usize >= DNS_FRAME_MAX {
        global_add(Global::DnsUnheld);
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if copy(DNS_KIND_QUERY, device, ifindex, len, now, None, load) {
        global_add(Global::DnsQueries);
    } else {
        global_add(Global::DnsQueryRingFull);
    }
}

/// Reserves a ring slot and fills it in place (a `DnsFrame` is far larger
/// than the BPF stack). `load(dst, len)` copies the frame's first `len`
/// bytes; callers guarantee 0 < len < DNS_FRAME_MAX.
#[inline(always)]
fn copy(
    kind: u8,
    device: u32,
    ifindex: u32,
    len: u32,
    now: u64,
    asked: Option<&[u8; 16]>,
    load: impl Fn(*mut u8, u32) -> i64,
) -> bool {
    let Some(mut entry) = DNS_FRAMES.reserve::<DnsFrame>(0) else {
        return false;
    };
    let p = entry.as_mut_ptr();
    // The verifier must see 1 <= n <= DNS_FRAME_MAX on the register passed
    // to the helper, with no branch to learn that from: verifiers before
    // 6.8 learn nothing from `n != 0`, and 6.1 then refuses a copy that may
    // be empty. An AND and an add bound it for every verifier. The callers
    // checked 0 < len < DNS_FRAME_MAX, so n == len; the volatile reload
    // keeps LLVM from seeing that and passing `len` itself.
    let v = unsafe { core::ptr::read_volatile(&len) };
    let n = (v.wrapping_sub(1) & (DNS_FRAME_MAX as u32 - 1)) + 1;
    unsafe {
        (*p).stamp_ns = now;
        (*p).ifindex = ifindex;
        (*p).len = n;
        (*p).device = device;
        (*p).kind = kind;
        (*p)._pad = [0, 0];
        match asked {
            Some(a) => {
                (*p).redirected = 1;
                (*p).asked = *a;
            }
            None => {
                (*p).redirected = 0;
                (*p).asked = [0; 16];
            }
        }
        if load((*p).frame.as_mut_ptr(), n) != 0 {
            entry.discard(0);
            return false;
        }
    }
    entry.submit(0);
    true
}
