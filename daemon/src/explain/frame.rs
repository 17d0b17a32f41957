//! The packet a question stands for: the first packet of a new connection
//! from the device (a TCP SYN, a UDP datagram, an ICMP echo request or a
//! message of the type asked for), which the model then parses and judges
//! exactly as the kernel would.

use std::net::IpAddr;

use iotfence_common::consts::{
    ETH_P_IP, ETH_P_IPV6, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};

/// The router's side of the link (any unicast MAC does: the judge reads
/// only the source).
const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// A new connection's source port.
const EPHEMERAL: u16 = 49_152;

/// `port`: the destination port (TCP, UDP) or ICMP type (ignored for
/// other protocols).
pub fn first_packet(mac: [u8; 6], src: IpAddr, dst: IpAddr, proto: u8, port: u16) -> Vec<u8> {
    let l4 = match proto {
        PROTO_TCP => {
            let mut h = vec![0u8; 20];
            h[0..2].copy_from_slice(&EPHEMERAL.to_be_bytes());
            h[2..4].copy_from_slice(&port.to_be_bytes());
            h[4..8].copy_from_slice(&1u32.to_be_bytes());
            h[12] = 5 << 4;
            h[13] = 0x02; // SYN
            h[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
            h
        }
        PROTO_UDP => {
            let mut h = vec![0u8; 8];
            h[0..2].copy_from_slice(&EPHEMERAL.to_be_bytes());
            h[2..4].copy_from_slice(&port.to_be_bytes());
            h[4..6].copy_from_slice(&8u16.to_be_bytes());
            h
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            // Type, code, checksum, then an echo's identifier and sequence.
            let mut h = vec![0u8; 8];
            h[0] = port as u8;
            h[4..6].copy_from_slice(&1u16.to_be_bytes());
            h
        }
        // Some payload: an empty IPv6 payload would read as a jumbogram.
        _ => vec![0u8; 8],
    };
    let mut f = Vec::with_capacity(14 + 40 + l4.len());
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&mac);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&ETH_P_IP.to_be_bytes());
            let total = (20 + l4.len()) as u16;
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend_from_slice(&v6(s));
            f.extend_from_slice(&v6(d));
        }
    }
    f.extend_from_slice(&l4);
    f
}
