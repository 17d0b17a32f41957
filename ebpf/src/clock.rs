//! The clock every per-packet deadline is read against: flow idle times,
//! learned-address expiry and the event rate limit.
//!
//! CLOCK_MONOTONIC_COARSE (the kernel's tick-cached time) where the kernel
//! has `bpf_ktime_get_coarse_ns` (5.11 on), rather than `bpf_ktime_get_ns`:
//! the precise clock reads the TSC, which in a VM costs tens of nanoseconds,
//! as much as a whole map lookup. The coarse one lags by at most one tick
//! (1–10 ms), nothing against idle timeouts and DNS lifetimes counted in
//! seconds. Both share CLOCK_MONOTONIC's base, so the daemon's deadlines
//! (written from `clock_gettime(CLOCK_MONOTONIC)`) and event stamps stay
//! comparable, and the choice is one per loaded object: every writer and
//! reader of a flow's `last_seen_ns` uses the same clock.

use aya_ebpf::helpers::{bpf_ktime_get_ns, generated::bpf_ktime_get_coarse_ns};

use crate::features;

#[inline(always)]
pub fn now() -> u64 {
    if features::coarse_clock() {
        unsafe { bpf_ktime_get_coarse_ns() }
    } else {
        unsafe { bpf_ktime_get_ns() }
    }
}
