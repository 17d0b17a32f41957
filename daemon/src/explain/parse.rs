//! The frame as the kernel's parser reads it (`ebpf/src/parse`): headers,
//! bounds, and the first reason a frame is malformed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iotfence_common::{
    consts::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    Reason,
};

/// Where a packet stands in a fragment train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Frag {
    #[default]
    Whole,
    /// Offset 0, more to come: carries the L4 header.
    First,
    /// Offset > 0: no L4 header.
    Later,
}

/// What the model reads off a frame. On a parse error it holds what had
/// been read by then: the kernel identifies the sender from that.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// 0 until an IP header passed its checks.
    pub family: u8,
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// The destination port, or the ICMP type.
    pub port: u16,
    pub trackable: bool,
    pub echo: bool,
    pub frag: Frag,
    pub frag_id: u32,
    pub icmp_type: Option<u8>,
    pub hop_limit: u8,
    pub tcp_flags: u8,
}

/// A bounds-checked view; every miss is `Malformed`.
struct View<'a>(&'a [u8]);

impl View<'_> {
    fn at<const N: usize>(&self, off: usize) -> Result<[u8; N], Reason> {
        self.0
            .get(off..off + N)
            .map(|s| s.try_into().unwrap())
            .ok_or(Reason::Malformed)
    }
    fn byte(&self, off: usize) -> Result<u8, Reason> {
        self.0.get(off).copied().ok_or(Reason::Malformed)
    }
    fn u16(&self, off: usize) -> Result<u16, Reason> {
        self.at::<2>(off).map(u16::from_be_bytes)
    }
}

/// Parses a frame as the kernel does; `Ok` with family 0 is not IP.
pub fn parse(bytes: &[u8]) -> (Frame, Result<(), Reason>) {
    let mut f = Frame::default();
    let r = parse_into(&View(bytes), &mut f);
    (f, r)
}

fn parse_into(v: &View, f: &mut Frame) -> Result<(), Reason> {
    f.dst_mac = v.at(0)?;
    f.src_mac = v.at(6)?;
    let mut ethertype = v.u16(12)?;
    let mut l3 = 14;
    // At most two VLAN tags; a third is malformed (the kernel would still
    // deliver what is inside).
    for tag in 0..=2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        if tag == 2 {
            return Err(Reason::Malformed);
        }
        ethertype = v.u16(l3 + 2)?;
        l3 += 4;
    }
    let (l4, ip_end) = match ethertype {
        0x0800 => ipv4(v, l3, f)?,
        0x86dd => ipv6(v, l3, f)?,
        _ => return Ok(()),
    };
    if f.frag == Frag::Later {
        return Ok(());
    }
    transport(v, l4, ip_end, f)
}

fn ipv4(v: &View, l3: usize, f: &mut Frame) -> Result<(usize, usize), Reason> {
    let h: [u8; 20] = v.at(l3)?;
    f.proto = h[9];
    f.src = Some(Ipv4Addr::from(<[u8; 4]>::try_from(&h[12..16]).unwrap()).into());
    f.dst = Some(Ipv4Addr::from(<[u8; 4]>::try_from(&h[16..20]).unwrap()).into());
    let ihl = (h[0] & 0xf) as usize * 4;
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    if h[0] >> 4 != 4 || ihl < 20 || total < ihl || l3 + total > v.0.len() {
        return Err(Reason::Malformed);
    }
    f.family = 4;
    let word = u16::from_be_bytes([h[6], h[7]]);
    let (offset, more) = (word & 0x1fff, word & 0x2000 != 0);
    if offset > 0 {
        f.frag = Frag::Later;
    } else if more {
        f.frag = Frag::First;
    }
    if f.frag != Frag::Whole {
        f.frag_id = u16::from_be_bytes([h[4], h[5]]) as u32;
    }
    Ok((l3 + ihl, l3 + total))
}

/// IPv4-mapped IPv6 (::ffff:0:0/96): never valid on a wire, and it would
/// alias the IPv4 twin inside the datapath.
fn mapped(a: &Ipv6Addr) -> bool {
    a.to_ipv4_mapped().is_some()
}

fn ipv6(v: &View, l3: usize, f: &mut Frame) -> Result<(usize, usize), Reason> {
    let h: [u8; 40] = v.at(l3)?;
    let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
    f.hop_limit = h[7];
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&h[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&h[24..40]).unwrap());
    f.src = Some(src.into());
    f.dst = Some(dst.into());
    if h[0] >> 4 != 6 || payload == 0 || l3 + 40 + payload > v.0.len() {
        return Err(Reason::Malformed);
    }
    if mapped(&src) || mapped(&dst) {
        return Err(Reason::Malformed);
    }
    f.family = 6;
    let end = l3 + 40 + payload;
    let mut next = h[6];
    let mut off = l3 + 40;
    // Extension headers are read against the frame, not the payload end;
    // the L4 header must then lie inside the payload.
    for _ in 0..iotfence_common::consts::MAX_IPV6_EXT_HEADERS {
        match next {
            0 | 43 | 60 => {
                let len = (v.byte(off + 1)? as usize + 1) * 8;
                next = v.byte(off)?;
                off += len;
            }
            51 => {
                let len = (v.byte(off + 1)? as usize + 2) * 4;
                next = v.byte(off)?;
                off += len;
            }
            44 => {
                let word = v.u16(off + 2)?;
                f.frag_id = u32::from_be_bytes(v.at(off + 4)?);
                next = v.byte(off)?;
                off += 8;
                if word >> 3 > 0 {
                    f.frag = Frag::Later;
                    f.proto = next;
                    return Ok((off, end));
                }
                if word & 1 == 1 {
                    f.frag = Frag::First;
                }
            }
            proto => {
                f.proto = proto;
                return Ok((off, end));
            }
        }
    }
    Err(Reason::Ipv6Chain)
}

fn transport(v: &View, l4: usize, ip_end: usize, f: &mut Frame) -> Result<(), Reason> {
    let need = |n: usize| {
        if l4 + n <= ip_end {
            Ok(())
        } else {
            Err(Reason::Malformed)
        }
    };
    match f.proto {
        PROTO_TCP | PROTO_UDP => {
            need(if f.proto == PROTO_TCP { 20 } else { 8 })?;
            if f.proto == PROTO_TCP && v.byte(l4 + 12)? >> 4 < 5 {
                return Err(Reason::Malformed);
            }
            f.sport = v.u16(l4)?;
            f.dport = v.u16(l4 + 2)?;
            if f.proto == PROTO_TCP {
                f.tcp_flags = v.byte(l4 + 13)?;
            }
            f.port = f.dport;
            f.trackable = true;
        }
        PROTO_ICMP if f.family == 4 => icmp(v, l4, f, need, [8, 0])?,
        PROTO_ICMPV6 if f.family == 6 => icmp(v, l4, f, need, [128, 129])?,
        // ICMP in IPv6, ICMPv6 in IPv4: an unknown protocol there, but not
        // one tracked as a flow.
        PROTO_ICMP | PROTO_ICMPV6 => {}
        _ => f.trackable = true,
    }
    Ok(())
}

fn icmp(
    v: &View,
    l4: usize,
    f: &mut Frame,
    need: impl Fn(usize) -> Result<(), Reason>,
    echo: [u8; 2],
) -> Result<(), Reason> {
    need(4)?;
    let ty = v.byte(l4)?;
    f.icmp_type = Some(ty);
    f.port = ty as u16;
    if echo.contains(&ty) {
        need(8)?;
        f.sport = v.u16(l4 + 4)?;
        f.trackable = true;
        f.echo = true;
    }
    Ok(())
}
