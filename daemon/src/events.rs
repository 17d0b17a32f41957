//! Violation events from the ring buffer, rendered as one JSON line each.

use std::net::{IpAddr, Ipv6Addr};

use iotfence_common::{Reason, ViolationEvent};
use serde::Serialize;

use crate::compile::Compiled;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Violation {
    /// CLOCK_MONOTONIC nanoseconds (the kernel's clock for the event).
    pub monotonic_ns: u64,
    pub device: String,
    pub device_id: u32,
    pub profile: String,
    pub verdict: &'static str,
    pub reason: &'static str,
    pub src_mac: String,
    pub protocol: u8,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub src_port: u16,
    pub dst_port: u16,
    /// Events of this device suppressed by the rate limit before this one.
    pub suppressed: u32,
}

fn addr(family: u8, a: [u8; 16]) -> Option<String> {
    let v6 = Ipv6Addr::from(a);
    match family {
        4 => v6.to_ipv4_mapped().map(|v4| IpAddr::V4(v4).to_string()),
        6 => Some(v6.to_string()),
        _ => None,
    }
}

pub fn decode(bytes: &[u8]) -> Option<ViolationEvent> {
    if bytes.len() < std::mem::size_of::<ViolationEvent>() {
        return None;
    }
    // SAFETY: ViolationEvent is plain old data and the buffer is long enough.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

pub fn describe(e: &ViolationEvent, policy: &Compiled) -> Violation {
    let m = e.src_mac;
    Violation {
        monotonic_ns: e.time_ns,
        device: policy.device_name(e.device).to_string(),
        device_id: e.device,
        profile: policy.profile_name(e.profile).to_string(),
        verdict: match e.verdict {
            2 => "audited",
            _ => "dropped",
        },
        reason: Reason::from_u8(e.reason)
            .map(Reason::name)
            .unwrap_or("unknown"),
        src_mac: format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        ),
        protocol: e.proto,
        src: addr(e.family, e.src),
        dst: addr(e.family, e.dst),
        src_port: e.sport,
        dst_port: e.dport,
        suppressed: e.suppressed,
    }
}
