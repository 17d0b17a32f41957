//! Violation events, sent through the ring buffer.

/// One denied (or, in audit mode, would-be denied) packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViolationEvent {
    /// bpf_ktime_get_ns (CLOCK_MONOTONIC).
    pub time_ns: u64,
    pub device: u32,
    /// Events of this device dropped by the rate limit since the last one sent.
    pub suppressed: u32,
    /// v4-mapped for IPv4.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub profile: u16,
    pub proto: u8,
    /// 4 or 6; 0 when the packet did not parse that far.
    pub family: u8,
    pub verdict: u8,
    pub reason: u8,
    pub src_mac: [u8; 6],
}
