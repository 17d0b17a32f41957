//! `max_devices`: the device capacity. It sizes the device-indexed maps at
//! load, preallocated whatever the policy holds (per-CPU counters dominate:
//! see the README), so a small router keeps the default and a large site
//! raises it.

use serde_saphyr::Spanned;

use iotfence_common::consts::{MAX_DEVICES, MAX_DEVICE_CAPACITY, MIN_DEVICE_CAPACITY};

use crate::diag::Diags;

pub(super) fn max_devices(d: &mut Diags<'_>, v: &Option<Spanned<u64>>) -> u32 {
    match v {
        Some(s) if s.value < MIN_DEVICE_CAPACITY as u64 || s.value > MAX_DEVICE_CAPACITY as u64 => {
            d.on(
                s,
                format!("max_devices must be {MIN_DEVICE_CAPACITY} to {MAX_DEVICE_CAPACITY}"),
                Some(
                    "it counts the unknown-device slot too: a policy holds max_devices - 1 devices",
                ),
            );
            MAX_DEVICES
        }
        Some(s) => s.value as u32,
        None => MAX_DEVICES,
    }
}
