//! DNS learning counters, shared with the metrics endpoint.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::learn::Refusal;

/// Upper bounds (seconds) of the hold-latency histogram buckets.
pub const HOLD_BUCKETS: [f64; 12] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
];

#[derive(Default)]
pub struct DnsStats {
    pub queries: AtomicU64,
    pub answers: AtomicU64,
    /// (address, pattern) credits written.
    pub learned: AtomicU64,
    pub refused: [AtomicU64; Refusal::ALL.len()],
    pub off_chain_records: AtomicU64,
    pub reinjected: AtomicU64,
    pub reinject_failed: AtomicU64,
    /// Gauges.
    pub entries: AtomicU64,
    pub pending: AtomicU64,
    pub hold_buckets: [AtomicU64; HOLD_BUCKETS.len()],
    pub hold_count: AtomicU64,
    pub hold_sum_ns: AtomicU64,
    /// Until when (CLOCK_MONOTONIC ns) the kernel takes the last heartbeat
    /// as fresh: the service manager's watchdog is fed only before it.
    pub alive_until_ns: AtomicU64,
}

impl DnsStats {
    pub fn refuse(&self, r: Refusal) {
        self.refused[r as usize].fetch_add(1, Relaxed);
    }

    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused[r as usize].load(Relaxed)
    }

    /// DNS learning beat recently enough that answers are being held and
    /// released (not past the kernel's own deadline).
    pub fn beating(&self, now_ns: u64) -> bool {
        now_ns < self.alive_until_ns.load(Relaxed)
    }

    pub fn hold(&self, ns: u64) {
        let s = ns as f64 / 1e9;
        if let Some(i) = HOLD_BUCKETS.iter().position(|b| s <= *b) {
            self.hold_buckets[i].fetch_add(1, Relaxed);
        }
        self.hold_count.fetch_add(1, Relaxed);
        self.hold_sum_ns.fetch_add(ns, Relaxed);
    }
}
