//! Frames for fixtures and traffic generators: the fluent [`Packet`]
//! builder (`build.rs`) and the header encoders it uses (`encode.rs`). Hand-rolled so
//! malformed variants (bad lengths, truncation, deep tag stacks) are as
//! easy as good ones. Checksums are left zero unless asked for: the
//! datapath never reads them.

use std::net::{Ipv4Addr, Ipv6Addr};

mod build;
mod encode;
#[cfg(test)]
mod tests;

pub use build::{Packet, BROADCAST_MAC, TCP_ACK, TCP_SYN};

pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub use iotfence_common::consts::{ETH_P_IP as ETH_IP, ETH_P_IPV6 as ETH_IPV6};
pub const ETH_ARP: u16 = 0x0806;

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// `frame` (untagged IPv4 or IPv6 without extension headers, TCP or UDP)
/// with another source port: a new connection with the same headers.
pub fn with_sport(frame: &[u8], sport: u16) -> Vec<u8> {
    let l4 = match u16::from_be_bytes([frame[12], frame[13]]) {
        ETH_IP => 14 + (frame[14] & 0x0f) as usize * 4,
        ETH_IPV6 => 14 + 40,
        other => panic!("with_sport: ethertype {other:#06x}"),
    };
    let mut f = frame.to_vec();
    f[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
    f
}
