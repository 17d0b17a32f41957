//! Header encoders behind the builder: each lays out one header (and what
//! it carries) from plain values.

use std::net::{Ipv4Addr, Ipv6Addr};

/// TCP header: seq 1, no ack number, data offset 5, window 0xffff.
pub(super) fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq, ack
    t.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// UDP datagram with checksum field `sum` as given.
pub(super) fn udp(sport: u16, dport: u16, sum: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + data.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&sum.to_be_bytes());
    u.extend_from_slice(data);
    u
}

/// ICMP or ICMPv6 message with an identifier (echo) and 8 bytes of data.
pub(super) fn icmp(ty: u8, id: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    m
}

/// Fills in the IPv4 header checksum of `ip` (a bridge with br_netfilter
/// drops frames whose header checksum is wrong).
pub(super) fn set_ipv4_checksum(ip: &mut [u8]) {
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

/// An IPv4 header with total length 0 (the builder fills it in).
pub(super) fn ipv4_header(
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
pub(super) fn ipv6_packet(
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
