//! Per-CPU counters: every verdict by (device, verdict, reason), denied
//! packets by (device, verdict, protocol, port).

use iotfence_common::{reason::counter_index, Counter, Reason, Verdict, ViolationKey};

use crate::{
    maps::{COUNTERS, VIOLATIONS},
    parse::Headers,
};

/// The violation counter key of a denied packet.
#[inline(always)]
pub fn violation_key(device: u32, verdict: Verdict, h: &Headers) -> ViolationKey {
    ViolationKey {
        device,
        port: h.rule_port,
        proto: h.proto,
        verdict: verdict as u8,
    }
}

/// Adds `packets` and `bytes` to a violation counter. Per-CPU value, so an
/// existing key is bumped without atomics; a new key costs one insert (an
/// LRU map evicts the coldest key when full).
#[inline(always)]
pub fn add_violations(key: ViolationKey, packets: u64, bytes: u64) {
    match VIOLATIONS.get_ptr_mut(&key) {
        Some(c) => unsafe {
            (*c).packets += packets;
            (*c).bytes += bytes;
        },
        None => {
            let _ = VIOLATIONS.insert(&key, &Counter { packets, bytes }, 0);
        }
    }
}

#[inline(always)]
pub fn count(device: u32, verdict: Verdict, reason: Reason, len: u64) {
    if let Some(c) = COUNTERS.get_ptr_mut(counter_index(device, verdict, reason)) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}
