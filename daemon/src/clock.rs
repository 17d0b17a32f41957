//! The daemon's clocks in one place. Kernel deadlines (learned entries,
//! flows, DNS heartbeat) and event stamps are CLOCK_MONOTONIC nanoseconds,
//! which the kernel's coarse clock also reads; the state file and events
//! carry wall-clock time, converted here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// CLOCK_MONOTONIC, nanoseconds.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Unix time of `t`, milliseconds (0 before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// The wall-clock time of a CLOCK_MONOTONIC stamp, through the offset
/// between the two clocks now.
pub fn wall_of_mono(monotonic_ns: u64) -> SystemTime {
    let now = SystemTime::now();
    now.checked_sub(Duration::from_nanos(mono_ns().saturating_sub(monotonic_ns)))
        .unwrap_or(now)
}
