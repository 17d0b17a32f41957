//! Per-CPU counters: every verdict by (device, verdict, reason), denied
//! packets by (device, verdict, protocol, port).

use iotfence_common::{reason::counter_index, Counter, Reason, Verdict, ViolationKey};

use crate::{
    maps::{COUNTERS, VIOLATIONS},
    parse::Headers,
};

/// Per-CPU value, so an existing key is bumped without atomics; a new key
/// costs one insert (an LRU map evicts the coldest key when full).
#[inline(always)]
pub fn count_violation(device: u32, verdict: Verdict, h: &Headers, len: u64) {
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
pub fn count(device: u32, verdict: Verdict, reason: Reason, len: u64) {
    if let Some(c) = COUNTERS.get_ptr_mut(counter_index(device, verdict, reason)) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}
