//! Map keys.

/// Device by source MAC, per policy generation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacKey {
    pub generation: u8,
    pub _pad: u8,
    pub mac: [u8; 6],
}

/// A MAC-bound device's host address (v4-mapped for IPv4), per policy
/// generation: the exact check behind `DEVICE_NEEDS_IP*`, one hash lookup
/// instead of a trie walk (`DEVICE_PREFIX_IP*` marks devices that listed
/// CIDRs, checked in the device trie).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindKey {
    pub mac: MacKey,
    pub addr: [u8; 16],
}

/// LPM-trie key data for IPv4: a 32-bit scope (always matched in full) and the
/// address. The trie's `prefix_len` is `32 + cidr_len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lpm4 {
    pub scope: [u8; 4],
    pub addr: [u8; 4],
}

/// LPM-trie key data for IPv6; `prefix_len` is `32 + cidr_len`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lpm6 {
    pub scope: [u8; 4],
    pub addr: [u8; 16],
}

/// Bits of scope that a key always matches.
pub const SCOPE_BITS: u32 = 32;

/// Scope of a device-prefix key: the generation alone.
#[inline(always)]
pub const fn device_scope(generation: u8) -> [u8; 4] {
    [generation, 0, 0, 0]
}

/// Scope of a rule key: generation and profile.
#[inline(always)]
pub const fn rule_scope(generation: u8, profile: u16) -> [u8; 4] {
    let p = profile.to_be_bytes();
    [generation, 0, p[0], p[1]]
}

/// A connection (or fragment train) as seen from the device: `src` is always
/// the device's address, `dst` the remote one. IPv4 uses v4-mapped IPv6
/// addresses so one table serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub kind: u8,
    pub _pad: [u8; 2],
}

/// A DNS-over-TCP answer segment the daemon has released (see
/// `map_names::TCP_RESENT`): the flow as seen from the device, and the
/// segment's first sequence number.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResentKey {
    pub flow: FlowKey,
    pub seq: u32,
}

/// An address learned from DNS for one device.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LearnedKey {
    pub device: u32,
    pub addr: [u8; 16],
}

/// Denied packets of one device by (verdict, protocol, destination port or
/// ICMP type): the "what did it try" view of the metrics.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViolationKey {
    pub device: u32,
    /// Destination port (TCP/UDP/SCTP), ICMP type, else 0.
    pub port: u16,
    pub proto: u8,
    pub verdict: u8,
}

/// IPv4 address as a v4-mapped IPv6 address (`::ffff:a.b.c.d`).
#[inline(always)]
pub const fn v4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// An address as map keys hold it: IPv6 as is, IPv4 v4-mapped.
pub const fn addr_key(ip: core::net::IpAddr) -> [u8; 16] {
    match ip {
        core::net::IpAddr::V4(a) => v4_mapped(a.octets()),
        core::net::IpAddr::V6(a) => a.octets(),
    }
}
