//! Link traffic: the ICMPv6 a device needs for the link itself and the
//! router cannot forward, passed without rules.

use iotfence_common::consts::PROTO_ICMPV6;

use crate::parse::{Frag, Headers};

/// Neighbour discovery and MLD messages a device needs for the link itself,
/// passed without rules only where the router cannot forward them off the
/// link (else they would carry data anywhere, as they did):
/// - router solicitation, neighbour solicitation and advertisement with hop
///   limit 255 (RFC 4861 makes receivers drop any other) to a link-local
///   address, link-scope multicast, or an address of the router itself
///   (`to_router`: the router solicits from its global address when it
///   resolves a device, and the answer goes back there); ND to any other
///   global address is judged by rules;
/// - MLD queries and reports with hop limit 1, which no router forwards.
///
/// Router advertisements and redirects from a device are judged by rules.
#[inline(always)]
pub fn is_link_icmpv6(h: &Headers, to_router: impl FnOnce() -> bool) -> bool {
    if h.family != 6 || h.proto != PROTO_ICMPV6 || h.frag != Frag::None {
        return false;
    }
    match h.icmp_type {
        133 | 135 | 136 => h.hop_limit == 255 && (link_scope(&h.dst) || to_router()),
        130 | 131 | 132 | 143 => h.hop_limit == 1,
        _ => false,
    }
}

/// fe80::/10 (link-local unicast) or ff02::/16 (link-scope multicast).
#[inline(always)]
fn link_scope(a: &[u8; 16]) -> bool {
    (a[0] == 0xfe && a[1] & 0xc0 == 0x80) || (a[0] == 0xff && a[1] & 0x0f == 0x02)
}
