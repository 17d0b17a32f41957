//! The denial cache: a packet no flow covers that was denied before is
//! denied again from one per-CPU array slot, without the device, learned
//! and rule lookups and without the per-port LRU counter — a flood of
//! forbidden packets is the case XDP exists for.
//!
//! Direct-mapped by a hash of everything the decision reads: the sender's
//! MAC and address (who it is), the destination, the protocol, the rule
//! port and, for ICMPv6 (whose link messages are judged by hop limit), the
//! hop limit. A slot holds while the policy generation and the grants
//! epoch are those it was decided under; the daemon bumps the epoch after
//! every write that can allow what was denied (learned addresses, a
//! policy, the router's addresses) and before a held DNS answer goes out.
//! Only denials are cached, and only after the flow lookup (a live flow
//! outlives the rule that opened it): a stale or colliding slot costs a
//! full decision, never an allowance.
//!
//! Violation packets are counted in the slot while it holds a key and
//! moved to `iotf1_viol` when another key takes the slot; the daemon adds
//! what is still in the slots (`daemon/src/kernel/counters.rs`).
//!
//! A flood also exhausts the device's event rate limit. Once an event was
//! suppressed, the slot knows when the limit lifts and suppresses its
//! packets' events until then by itself, counting them (`pending`): the
//! shared rate state (one cache line per device, written by every CPU) and
//! the global counter are left alone on the flood's path. The next event
//! decided for the slot adds the count to the device's (which the event
//! then reports); the daemon adds what slots still hold to the metric.

use core::ptr::read_unaligned;

use iotfence_common::{
    consts::{DENIED_SLOTS, PROTO_ICMPV6},
    DeniedSlot, DeviceInfo, Global, Reason, Verdict,
};

use crate::{
    count::{add_violations, violation_key},
    events::global_add_n,
    maps::{DENIED, GRANTS},
    parse::{Frag, Headers},
};

const _: () = assert!(DENIED_SLOTS.is_power_of_two());

/// The grants epoch now. Read before the decision's lookups, so a slot
/// claimed from a decision that missed a grant carries the epoch the
/// grant's bump voids.
#[inline(always)]
pub fn epoch() -> u32 {
    match GRANTS.get(0) {
        Some(e) => *e,
        None => 0,
    }
}

/// A parsed packet the cache can judge: IP, and not a later fragment
/// (those are judged by their train, with no ports to key on).
#[inline(always)]
pub fn cacheable(h: &Headers) -> bool {
    h.family != 0 && h.frag != Frag::Later
}

/// The cache key of `h` into `k` (in the scratch: misaligned reads of the
/// headers, aligned words out).
#[inline(always)]
pub fn key(h: &Headers, k: &mut [u64; 6]) {
    let hop = if h.proto == PROTO_ICMPV6 {
        h.hop_limit
    } else {
        0
    };
    unsafe {
        k[0] = read_unaligned(h.src.as_ptr() as *const u64);
        k[1] = read_unaligned(h.src.as_ptr().add(8) as *const u64);
        k[2] = read_unaligned(h.dst.as_ptr() as *const u64);
        k[3] = read_unaligned(h.dst.as_ptr().add(8) as *const u64);
        k[4] = read_unaligned(h.src_mac.as_ptr() as *const u32) as u64
            | (read_unaligned(h.src_mac.as_ptr().add(4) as *const u16) as u64) << 32
            | (h.rule_port as u64) << 48;
    }
    k[5] = h.proto as u64 | (h.family as u64) << 8 | (hop as u64) << 16;
}

/// The slot of key `k`: a multiply-xorshift over its words.
#[inline(always)]
pub fn slot(k: &[u64; 6]) -> Option<*mut DeniedSlot> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < 6 {
        x = (x ^ k[i]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^= x >> 29;
        i += 1;
    }
    DENIED.get_ptr_mut((x >> 32) as u32 & (DENIED_SLOTS - 1))
}

#[inline(always)]
fn same_key(a: &[u64; 6], b: &[u64; 6]) -> bool {
    ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) | (a[5] ^ b[5]))
        == 0
}

/// A denial the slot holds for key `k` under this generation and epoch.
pub struct Cached {
    pub device: DeviceInfo,
    pub verdict: Verdict,
    pub reason: Reason,
}

/// The slot's denial of `k`, counting this packet in it; `None` when the
/// slot holds another key or a void one.
#[inline(always)]
pub fn hit(
    slot: &mut DeniedSlot,
    k: &[u64; 6],
    generation: u32,
    epoch: u32,
    len: u64,
) -> Option<Cached> {
    if slot.live != 1
        || slot.generation != generation
        || slot.epoch != epoch
        || !same_key(&slot.key, k)
    {
        return None;
    }
    let verdict = Verdict::from_u8(slot.violation.verdict)?;
    let reason = Reason::from_u8(slot.reason)?;
    slot.packets += 1;
    slot.bytes += len;
    Some(Cached {
        device: slot.device,
        verdict,
        reason,
    })
}

/// Units of `DeniedSlot::quiet`: 2^24 ns (16.8 ms), so a `u32` wraps after
/// 2.3 years. A quiet time is compared as at most half that ahead: only a
/// slot left untouched for over a year under one policy generation and
/// grants epoch could read an old one as ahead (and a quiet time further
/// ahead than that, from an absurd event limit, just takes the slow path).
const QUIET_SHIFT: u32 = 24;

/// Whether the slot's device is still within a quiet time its rate limit
/// set (then this packet's event is counted as suppressed in the slot).
#[inline(always)]
pub fn quiet(slot: &mut DeniedSlot, now: u64) -> bool {
    let now = (now >> QUIET_SHIFT) as u32;
    // Wrapping: `quiet` is ahead of `now` by less than half the range.
    if slot.quiet == 0 || (slot.quiet.wrapping_sub(now) as i32) <= 0 || slot.pending == u16::MAX {
        return false;
    }
    slot.pending += 1;
    true
}

/// The events the slot suppressed, handed to the rate limiter (zeroed).
#[inline(always)]
pub fn take_pending(slot: &mut DeniedSlot) -> u32 {
    let n = slot.pending as u32;
    slot.pending = 0;
    n
}

/// The rate limit suppressed this slot's event and lifts at `resume_ns`:
/// the slot is quiet until then (rounded down: it asks again early rather
/// than late).
#[inline(always)]
pub fn quiet_until(slot: &mut DeniedSlot, resume_ns: u64) {
    let q = (resume_ns >> QUIET_SHIFT) as u32;
    slot.quiet = if q == 0 { 1 } else { q };
}

/// Records a denial decided now, and counts its packet there. The same key
/// with the same counter keeps its counts; another one takes the slot
/// after moving the previous key's counts to the violation counters.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // the decision's parts, one call site
pub fn claim(
    slot: &mut DeniedSlot,
    k: &[u64; 6],
    h: &Headers,
    dev: &DeviceInfo,
    verdict: Verdict,
    reason: Reason,
    generation: u32,
    epoch: u32,
    len: u64,
) {
    let violation = violation_key(dev.device, verdict, h);
    let same = slot.live == 1 && same_key(&slot.key, k) && slot.violation == violation;
    if !same {
        if slot.live == 1 && slot.packets != 0 {
            add_violations(slot.violation, slot.packets, slot.bytes);
        }
        // The previous key's held-back events: counted, though its
        // device's next event will not include them.
        if slot.pending != 0 {
            global_add_n(Global::EventsSuppressed, slot.pending as u64);
        }
        slot.pending = 0;
        slot.quiet = 0;
        slot.key = *k;
        slot.violation = violation;
        slot.packets = 0;
        slot.bytes = 0;
        slot.live = 1;
    }
    slot.device = *dev;
    slot.generation = generation;
    slot.epoch = epoch;
    slot.reason = reason as u8;
    slot.packets += 1;
    slot.bytes += len;
}
