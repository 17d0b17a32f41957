//! DNS learning: frames the kernel hands to the daemon, and the control
//! record the daemon keeps fresh so the kernel knows someone is listening.

/// Frames shorter than this are held for the daemon (power of two: the
/// kernel masks lengths with `DNS_FRAME_MAX - 1` for the verifier). A UDP answer within the
/// common EDNS size (1232 bytes) plus Ethernet, two VLAN tags and IPv6 fits;
/// longer frames pass unheld and unlearned (counted).
pub const DNS_FRAME_MAX: usize = 2048;

/// `DnsFrame::kind`: a query a device sent to a resolver (copied, passed on).
pub const DNS_KIND_QUERY: u8 = 1;
/// An answer a resolver sent to a device (held: dropped in the kernel and
/// re-injected by the daemon once its addresses are in the learned map).
pub const DNS_KIND_ANSWER: u8 = 2;

/// One frame in the `iotf1_dns` ring buffer. Queries and answers share one
/// ring, so the daemon always sees a query before the answer to it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsFrame {
    /// bpf_ktime_get_ns (CLOCK_MONOTONIC) when the kernel saw the frame.
    pub stamp_ns: u64,
    pub ifindex: u32,
    /// Bytes of `frame` that hold the packet, from the Ethernet header on.
    pub len: u32,
    /// The device that sent the query or receives the answer.
    pub device: u32,
    pub kind: u8,
    /// 1: an answer to a redirected query (`dns.redirect`), still with the
    /// configured resolver's address: the daemon writes `asked` in as its
    /// source before it releases the frame.
    pub redirected: u8,
    pub _pad: [u8; 2],
    /// The resolver the device asked (v4-mapped for IPv4), when redirected.
    pub asked: [u8; 16],
    pub frame: [u8; DNS_FRAME_MAX],
}

/// `DnsControl::flags`: hold answers from resolvers and learn from them.
pub const DNS_LEARNING: u32 = 1;
/// When the daemon is gone (heartbeat stale), deliver answers unlearned
/// instead of dropping them.
pub const DNS_FAIL_OPEN: u32 = 2;

/// Written by the daemon (array of one).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsControl {
    /// CLOCK_MONOTONIC deadline of the daemon's heartbeat: after it, nobody
    /// would re-inject a held answer.
    pub alive_until_ns: u64,
    pub flags: u32,
    /// skb mark of re-injected answers, so the egress program lets them go.
    pub reinject_mark: u32,
}

/// `dns.redirect`: a device's query to a resolver other than the
/// configured ones was sent to `resolver` instead (`iotf1_dnat`), keyed as
/// the answer finds it. Addresses v4-mapped for IPv4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RedirectKey {
    /// The device's address and source port.
    pub device: [u8; 16],
    /// The configured resolver the query went to.
    pub resolver: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// What a redirected query's answer is rewritten back to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedirectValue {
    /// The resolver the device asked: the answer's source address.
    pub asked: [u8; 16],
    /// The MAC the query came from: an answer is rewritten only towards
    /// it, so a host spoofing a device's address cannot have the device's
    /// own answers rewritten.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// `iotf1_dns_to` slots: the resolver IPv4 (IPv6) queries are redirected
/// to; all-zero: none for that family.
pub const REDIRECT_TO_V4: u32 = 0;
pub const REDIRECT_TO_V6: u32 = 1;
/// `iotf1_redirects` slots (per-CPU counters).
pub const REDIRECTED_QUERIES: u32 = 0;
pub const REDIRECTED_ANSWERS: u32 = 1;
