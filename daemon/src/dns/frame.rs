//! Ethernet frames as the kernel copied them: locate the addresses, ports and
//! DNS payload, and finalize the L4 checksum before a held answer is sent
//! again. A locally generated answer leaves the stack with its checksum still
//! to be filled in by the NIC (CHECKSUM_PARTIAL), and a raw re-injection has
//! no such offload; for any other frame the result equals what is there.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::Range,
};

use iotfence_common::consts::{ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6};
use iotfence_common::consts::{PROTO_TCP, PROTO_UDP};

/// A parsed TCP or UDP frame (no IP options beyond IHL, no IPv6 extension
/// headers: resolvers do not send them, and such frames are only delivered,
/// never learned from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// Offsets of the IP and the L4 header, and the end of the IP packet.
    pub l3: usize,
    pub l4: usize,
    pub ip_end: usize,
    pub payload: Range<usize>,
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

pub fn parse(b: &[u8]) -> Option<Frame> {
    let mut ethertype = be16(b, 12)?;
    let mut off = 14;
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = be16(b, off + 2)?;
        off += 4;
    }
    let (src, dst, proto, l4, ip_end) = match ethertype {
        ETH_P_IP => {
            let h = b.get(off..off + 20)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            let total = be16(b, off + 2)? as usize;
            let frag = be16(b, off + 6)?;
            if h[0] >> 4 != 4 || ihl < 20 || total < ihl || frag & 0x3fff != 0 {
                return None;
            }
            let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            (src.into(), dst.into(), h[9], off + ihl, off + total)
        }
        ETH_P_IPV6 => {
            let h = b.get(off..off + 40)?;
            if h[0] >> 4 != 6 {
                return None;
            }
            let payload = be16(b, off + 4)? as usize;
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            (
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                h[6],
                off + 40,
                off + 40 + payload,
            )
        }
        _ => return None,
    };
    if ip_end > b.len() {
        return None;
    }
    let sport = be16(b, l4)?;
    let dport = be16(b, l4 + 2)?;
    let start = match proto {
        PROTO_UDP => l4 + 8,
        PROTO_TCP => l4 + ((*b.get(l4 + 12)? >> 4) as usize) * 4,
        _ => return None,
    };
    if start > ip_end {
        return None;
    }
    Some(Frame {
        src,
        dst,
        proto,
        sport,
        dport,
        l3: off,
        l4,
        ip_end,
        payload: start..ip_end,
    })
}

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes the correct TCP/UDP checksum into `buf` (the frame `f` was parsed
/// from).
pub fn finalize_checksum(buf: &mut [u8], f: &Frame) {
    let field = f.l4 + if f.proto == PROTO_UDP { 6 } else { 16 };
    if field + 2 > f.ip_end {
        return;
    }
    let len = (f.ip_end - f.l4) as u32;
    let mut acc = match (f.src, f.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum16(&d.octets(), sum16(&s.octets(), 0)),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum16(&d.octets(), sum16(&s.octets(), 0)),
        _ => return,
    };
    acc += f.proto as u32 + (len >> 16) + (len & 0xffff);
    buf[field] = 0;
    buf[field + 1] = 0;
    let mut c = fold(sum16(&buf[f.l4..f.ip_end], acc));
    if c == 0 && f.proto == PROTO_UDP {
        c = 0xffff; // 0 would mean "no checksum"
    }
    buf[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

/// Gives the frame in `buf` (parsed as `f`) the source address `src`, of
/// `f`'s family, and a correct IPv4 header checksum; returns the frame as
/// it is now. The L4 checksum is left to `finalize_checksum`.
pub fn set_source(buf: &mut [u8], f: &Frame, src: IpAddr) -> Option<Frame> {
    match (f.src, src) {
        (IpAddr::V4(_), IpAddr::V4(a)) => {
            buf[f.l3 + 12..f.l3 + 16].copy_from_slice(&a.octets());
            let ihl = (buf[f.l3] & 0x0f) as usize * 4;
            buf[f.l3 + 10] = 0;
            buf[f.l3 + 11] = 0;
            let c = fold(sum16(&buf[f.l3..f.l3 + ihl], 0));
            buf[f.l3 + 10..f.l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(_), IpAddr::V6(a)) => {
            buf[f.l3 + 8..f.l3 + 24].copy_from_slice(&a.octets());
        }
        _ => return None,
    }
    Some(Frame { src, ..f.clone() })
}

/// The DNS messages a payload carries: one for UDP; for TCP every complete
/// length-prefixed message, or `None` when one continues in a later segment.
pub fn messages(proto: u8, payload: &[u8]) -> Option<Vec<&[u8]>> {
    if proto == PROTO_UDP {
        return Some(vec![payload]);
    }
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let len = be16(rest, 0)? as usize;
        let msg = rest.get(2..2 + len)?;
        out.push(msg);
        rest = &rest[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + UDP 53 -> 40000 with a 4-byte payload and a
    /// correct checksum computed by hand.
    fn udp4() -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        let ip = [
            0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 10,
        ];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0, 53, 0x9c, 0x40, 0, 12, 0, 0, 1, 2, 3, 4]);
        f
    }

    #[test]
    fn parses_and_checksums_udp() {
        let mut b = udp4();
        let f = parse(&b).unwrap();
        assert_eq!((f.sport, f.dport, f.proto), (53, 40000, PROTO_UDP));
        assert_eq!(&b[f.payload.clone()], &[1, 2, 3, 4]);
        finalize_checksum(&mut b, &f);
        // Verify: the one's complement sum over pseudo header + segment is 0xffff.
        let mut acc = sum16(&[192, 0, 2, 1, 192, 0, 2, 10], 0) + 17 + 12;
        acc = sum16(&b[f.l4..f.ip_end], acc);
        assert_eq!(fold(acc), 0);
        let again = b.clone();
        finalize_checksum(&mut b, &f);
        assert_eq!(b, again, "finalizing twice changes nothing");
    }

    #[test]
    fn a_new_source_keeps_both_checksums_right() {
        let mut b = udp4();
        let f = parse(&b).unwrap();
        let asked: IpAddr = "203.0.113.5".parse().unwrap();
        let g = set_source(&mut b, &f, asked).unwrap();
        finalize_checksum(&mut b, &g);
        assert_eq!(parse(&b).unwrap().src, asked);
        assert_eq!(fold(sum16(&b[14..34], 0)), 0, "IPv4 header checksum");
        let mut acc = sum16(&[203, 0, 113, 5, 192, 0, 2, 10], 0) + 17 + 12;
        acc = sum16(&b[g.l4..g.ip_end], acc);
        assert_eq!(fold(acc), 0, "UDP checksum");
        let v6: IpAddr = "2001:db8:ff::53".parse().unwrap();
        assert!(set_source(&mut b, &g, v6).is_none(), "another family");
    }

    #[test]
    fn tcp_messages_need_their_whole_length() {
        assert_eq!(
            messages(PROTO_TCP, &[0, 2, 9, 9, 0, 1, 7]).unwrap(),
            vec![&[9u8, 9][..], &[7u8][..]]
        );
        assert!(messages(PROTO_TCP, &[0, 5, 1, 2]).is_none());
        assert!(parse(&udp4()[..30]).is_none());
    }
}
