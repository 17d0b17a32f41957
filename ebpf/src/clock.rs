//! The clock every per-packet deadline is read against: flow idle times,
//! learned-address expiry and the event rate limit.
//!
//! CLOCK_MONOTONIC_COARSE (the kernel's tick-cached time) rather than
//! `bpf_ktime_get_ns`: the precise clock reads the TSC, which in a VM costs
//! tens of nanoseconds, as much as a whole map lookup. The coarse one lags
//! by at most one tick (1–10 ms), nothing against idle timeouts and DNS
//! lifetimes counted in seconds. It shares CLOCK_MONOTONIC's base, so the
//! daemon's deadlines (written from `clock_gettime(CLOCK_MONOTONIC)`) and
//! event stamps stay comparable. Every writer and reader of a flow's
//! `last_seen_ns` must use this same clock, or the difference can wrap.

use aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns;

#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_coarse_ns() }
}
