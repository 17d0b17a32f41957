//! DNS redirect (`dns.redirect`): a device that only knows a hard-coded
//! resolver (8.8.8.8, say) would have its queries dropped, since no profile
//! allows an arbitrary resolver. With the redirect on, a query over UDP or
//! TCP port 53 to an address that is not a configured resolver goes to the
//! configured one instead, and its answer comes back with the address the
//! device asked, so the device works and the answer is learned from.
//!
//! The judge (XDP or TC) only looks at the headers: it decides as for a
//! query to the configured resolver (`Headers::dst` replaced, the asked
//! address kept in `Headers::asked`). The packet itself is rewritten at TC,
//! by the TC judge or, beside the XDP judge, by `from_device_dns`: the
//! kernel's checksum helpers there keep the checksums right whatever state
//! the NIC left them in (complete, or still to be filled in), which XDP
//! cannot know. Answers are rewritten back at TC egress, or by the daemon
//! when it releases a held one (the kernel hands it the resolver's form,
//! which is what learning matches against the query it saw).
//!
//! DNS over TLS (853) and HTTPS are not DNS port 53: they stay judged by
//! the profile, like any other destination.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::generated::bpf_csum_diff,
    programs::TcContext,
};
use iotfence_common::{
    consts::{PROTO_TCP, PROTO_UDP},
    dns::{REDIRECTED_ANSWERS, REDIRECTED_QUERIES, REDIRECT_TO_V4, REDIRECT_TO_V6},
};

use crate::{
    features,
    flow::same_mac,
    maps::{REDIRECTED, REDIRECTS, REDIRECT_TO, RESOLVERS, SCRATCH},
    parse::{Frag, Headers},
    scratch::Scratch,
};

const DNS_PORT: u16 = 53;

/// With the redirect on: unfragmented TCP or UDP with DNS's port on the
/// resolver's side (`port`).
#[inline(always)]
fn dns_shaped(h: &Headers, port: u16) -> bool {
    features::dns_redirect()
        && h.family != 0
        && h.frag == Frag::None
        && port == DNS_PORT
        && (h.proto == PROTO_UDP || h.proto == PROTO_TCP)
}

#[inline(always)]
fn is_zero(a: &[u8; 16]) -> bool {
    let p = a.as_ptr() as *const u64;
    unsafe { core::ptr::read_unaligned(p) | core::ptr::read_unaligned(p.add(1)) == 0 }
}

/// The judge's part: a device's query to a resolver that is not a
/// configured one is judged, copied and tracked as a query to the
/// configured resolver of its family (if there is one).
#[inline(always)]
pub fn query(h: &mut Headers) {
    if !dns_shaped(h, h.dport) || unsafe { RESOLVERS.get(&h.dst) }.is_some() {
        return;
    }
    let slot = if h.family == 4 {
        REDIRECT_TO_V4
    } else {
        REDIRECT_TO_V6
    };
    let Some(to) = REDIRECT_TO.get(slot) else {
        return;
    };
    if is_zero(to) {
        return;
    }
    h.asked = h.dst;
    h.dst = *to;
    h.redirected = true;
}

/// The egress part: an answer from the configured resolver to a query
/// that was redirected, towards the MAC that sent the query, is marked
/// for rewriting back (`Headers::asked`).
#[inline(always)]
pub fn answer(s: &mut Scratch) {
    let h = &s.h;
    if !dns_shaped(h, h.sport) {
        return;
    }
    let k = &mut s.redirect;
    k.device = h.dst;
    k.resolver = h.src;
    k.port = h.dport;
    k.proto = h.proto;
    k._pad = 0;
    let Some(v) = (unsafe { REDIRECTS.get(&s.redirect) }) else {
        return;
    };
    if !same_mac(&v.mac, &h.dst_mac) {
        return;
    }
    s.h.asked = v.asked;
    s.h.redirected = true;
    count(REDIRECTED_ANSWERS);
}

/// Whether the headers in `s` are a redirected query's or its answer's:
/// with the redirect off this is a constant false for the verifier (the
/// flag in the scratch is not), which prunes every path that follows.
#[inline(always)]
pub fn redirected(s: &Scratch) -> bool {
    features::dns_redirect() && s.h.redirected
}

/// Sends the query the judge redirected (scratch slot 0) to the configured
/// resolver: records where its answer must appear to come from, then
/// rewrites the destination. False: it could not be redirected (drop it:
/// its answer could never be rewritten back).
#[inline(always)]
pub fn rewrite_query(ctx: &mut TcContext) -> bool {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let s = unsafe { &mut *s };
    let h = &s.h;
    let k = &mut s.redirect;
    k.device = h.src;
    k.resolver = h.dst;
    k.port = h.sport;
    k.proto = h.proto;
    k._pad = 0;
    let v = &mut s.redirect_value;
    v.asked = h.asked;
    v.mac = h.src_mac;
    v._pad = [0; 2];
    if REDIRECTS.insert(&s.redirect, &s.redirect_value, 0).is_err() {
        return false;
    }
    count(REDIRECTED_QUERIES);
    set_addr(ctx, &s.h, true, &s.h.asked, &s.h.dst)
}

/// Gives an answer to a redirected query (scratch slot 1, marked by
/// `answer`) the source address the device asked.
#[inline(always)]
pub fn rewrite_answer(ctx: &mut TcContext) -> bool {
    let Some(s) = SCRATCH.get_ptr_mut(1) else {
        return false;
    };
    let s = unsafe { &*s };
    set_addr(ctx, &s.h, false, &s.h.src, &s.h.asked)
}

/// Replaces the destination (`dst`) or source address `old` by `new`, and
/// updates the IPv4 header and TCP/UDP checksums (the addresses are part
/// of the L4 pseudo-header).
#[inline(always)]
fn set_addr(ctx: &mut TcContext, h: &Headers, dst: bool, old: &[u8; 16], new: &[u8; 16]) -> bool {
    let l3 = h.l3 as usize;
    let csum = h.l4 as usize + if h.proto == PROTO_UDP { 6 } else { 16 };
    // A UDP checksum of 0 means none (IPv4): leave it so.
    let mangled = if h.proto == PROTO_UDP {
        BPF_F_MARK_MANGLED_0 as u64
    } else {
        0
    };
    if h.family == 4 {
        let from = u32::from_ne_bytes([old[12], old[13], old[14], old[15]]);
        let to = u32::from_ne_bytes([new[12], new[13], new[14], new[15]]);
        let at = l3 + if dst { 16 } else { 12 };
        ctx.l4_csum_replace(
            csum,
            from as u64,
            to as u64,
            BPF_F_PSEUDO_HDR as u64 | mangled | 4,
        )
        .is_ok()
            && ctx
                .l3_csum_replace(l3 + 10, from as u64, to as u64, 4)
                .is_ok()
            && ctx.store(at, &to, 0).is_ok()
    } else {
        let diff = unsafe {
            bpf_csum_diff(
                old.as_ptr() as *mut u32,
                16,
                new.as_ptr() as *mut u32,
                16,
                0,
            )
        };
        let at = l3 + if dst { 24 } else { 8 };
        diff >= 0
            && ctx
                .l4_csum_replace(csum, 0, diff as u64, BPF_F_PSEUDO_HDR as u64 | mangled)
                .is_ok()
            && ctx.store(at, new, 0).is_ok()
    }
}

#[inline(always)]
fn count(slot: u32) {
    if let Some(n) = REDIRECTED.get_ptr_mut(slot) {
        unsafe { *n += 1 };
    }
}
