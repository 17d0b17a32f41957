//! Frames for fixtures and traffic generators: the fluent [`Packet`]
//! builder (`build.rs`) and the header encoders it uses. Hand-rolled so
//! malformed variants (bad lengths, truncation, deep tag stacks) are as
//! easy as good ones. Checksums are left zero unless asked for: the
//! datapath never reads them.

use std::net::{Ipv4Addr, Ipv6Addr};

mod build;
#[cfg(test)]
mod tests;

pub use build::{Packet, BROADCAST_MAC, TCP_ACK, TCP_SYN};

pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub fn eth(src: [u8; 6], dst: [u8; 6], tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(64 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (i, tpid) in tags.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(100 + i as u16).to_be_bytes()); // VLAN id
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header (with `options`, a multiple of 4 bytes) and payload.
pub fn ipv4_full(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    options: &[u8],
    frag: u16,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4) && options.len() <= 40);
    let ihl = 5 + options.len() / 4;
    let total = ihl * 4 + payload.len();
    let mut p = vec![(4 << 4) | ihl as u8, 0];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    p
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, &[], 0, 1, payload)
}

/// IPv6 header; `exts` are (header type, bytes) in order, each already a
/// multiple of 8 bytes with its next-header byte filled in by this function.
pub fn ipv6_full(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: u8,
    exts: &[(u8, Vec<u8>)],
    payload: &[u8],
) -> Vec<u8> {
    let ext_len: usize = exts.iter().map(|(_, b)| b.len()).sum();
    let first = exts.first().map(|(t, _)| *t).unwrap_or(proto);
    let mut p = vec![6 << 4, 0, 0, 0];
    p.extend_from_slice(&((ext_len + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = exts.get(i + 1).map(|(t, _)| *t).unwrap_or(proto);
        p.extend_from_slice(&b);
    }
    p.extend_from_slice(payload);
    p
}

pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv6_full(src, dst, proto, &[], payload)
}

/// An 8-byte hop-by-hop / destination-options / routing header (PadN).
pub fn ext_opts(kind: u8) -> (u8, Vec<u8>) {
    (kind, vec![0, 0, 1, 4, 0, 0, 0, 0])
}

/// IPv6 fragment header: `offset` in 8-byte units.
pub fn ext_frag(offset: u16, more: bool, id: u32) -> (u8, Vec<u8>) {
    let fo = (offset << 3) | more as u16;
    let mut b = vec![0, 0];
    b.extend_from_slice(&fo.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    (44, b)
}

pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq, ack
    t.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// ICMP or ICMPv6 message with an identifier (echo) and 8 bytes of data.
pub fn icmp(ty: u8, id: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    m
}

pub use iotfence_common::consts::{ETH_P_IP as ETH_IP, ETH_P_IPV6 as ETH_IPV6};
pub const ETH_ARP: u16 = 0x0806;

pub fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// ARP request (who-has) from `mac`.
pub fn arp(mac: [u8; 6], src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&mac);
    a.extend_from_slice(&src.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    eth(mac, [0xff; 6], &[], ETH_ARP, &a)
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

/// Fills in the IPv4 header checksum of `ip` (a bridge with br_netfilter
/// drops frames whose header checksum is wrong).
pub fn set_ipv4_checksum(ip: &mut [u8]) {
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    ip[10] = 0;
    ip[11] = 0;
    let mut sum: u32 = 0;
    for w in ip[..ihl].chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// An Ethernet frame carrying `l4` (protocol `proto`) from `src` to `dst`,
/// IPv4 (with its header checksum: bridges with br_netfilter check it) or
/// IPv6 as the addresses are.
pub fn ip_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    use std::net::IpAddr::{V4, V6};
    match (src, dst) {
        (V4(s), V4(d)) => {
            let mut ip = ipv4(s, d, proto, l4);
            set_ipv4_checksum(&mut ip);
            eth(src_mac, dst_mac, &[], ETH_IP, &ip)
        }
        (V6(s), V6(d)) => eth(src_mac, dst_mac, &[], ETH_IPV6, &ipv6(s, d, proto, l4)),
        _ => panic!("{src} and {dst} are of different families"),
    }
}

/// An IPv4 header with total length 0 (the builder fills it in).
fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    options: &[u8],
    frag: u16,
    id: u16,
    ttl: u8,
) -> Vec<u8> {
    let ihl = 5 + options.len() / 4;
    let mut p = vec![(4 << 4) | ihl as u8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[ttl, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    p
}

/// An IPv6 packet; `exts` are (header type, bytes) in order, each a
/// multiple of 8 bytes, its next-header byte filled in here.
fn ipv6_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    proto: u8,
    hops: u8,
    exts: &[(u8, Vec<u8>)],
    payload: &[u8],
) -> Vec<u8> {
    let ext_len: usize = exts.iter().map(|(_, b)| b.len()).sum();
    let first = exts.first().map(|(t, _)| *t).unwrap_or(proto);
    let mut p = vec![6 << 4, 0, 0, 0];
    p.extend_from_slice(&((ext_len + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, hops]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = exts.get(i + 1).map(|(t, _)| *t).unwrap_or(proto);
        p.extend_from_slice(&b);
    }
    p.extend_from_slice(payload);
    p
}
