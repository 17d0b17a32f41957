//! Header parsing shared by every program: Ethernet with up to two VLAN tags
//! (802.1Q / 802.1ad), IPv4 with options and fragments, IPv6 with a bounded
//! extension-header walk, and the ports or ICMP type of TCP, UDP, ICMP and
//! ICMPv6. Every read is bounds-checked against the packet end; anything that
//! does not fit is an error, never a guess.

use core::mem::size_of;

use iotfence_common::{
    consts::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, MAX_IPV6_EXT_HEADERS, PROTO_ICMP,
        PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
    },
    keys::v4_mapped,
    Reason,
};

const ETH_HLEN: usize = 14;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Frag {
    /// Not a fragment.
    None,
    /// Offset 0 with more fragments to come: carries the L4 header.
    First,
    /// Offset > 0: no L4 header; judged by its first fragment.
    Later,
}

/// What the decision needs from a packet.
pub struct Headers {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// The outer 802.1Q/802.1ad tag's VLAN ID in the frame (0: untagged).
    pub vlan: u16,
    /// 0 (not IP), 4 or 6.
    pub family: u8,
    /// v4-mapped for IPv4.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    /// What rules match on: the destination port, or the ICMP type.
    pub rule_port: u16,
    /// The packet can be tracked as a flow (ports, or an ICMP echo id).
    pub flow: bool,
    /// ICMP echo request or reply: `sport` holds the identifier.
    pub echo: bool,
    pub frag: Frag,
    pub frag_id: u32,
    pub icmp_type: u8,
    /// IPv6 hop limit (0 for IPv4).
    pub hop_limit: u8,
    /// TCP/UDP payload bytes (0 for other protocols).
    pub payload_len: u16,
    /// TCP flags and sequence number (0 for other protocols).
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    /// Set by the judge: a query to a resolver the daemon should see.
    pub dns_query: bool,
    /// Offsets of the IP and (when parsed) the L4 header in the frame.
    pub l3: u16,
    pub l4: u16,
    /// `dns.redirect` (`redirect.rs`): `dst` (a query) or `src` (its
    /// answer) stands for the configured resolver, and the packet still
    /// carries `asked`, the resolver the device asked, in its place.
    pub redirected: bool,
    pub asked: [u8; 16],
}

impl Headers {
    /// Clears what `parse` may leave unset (the scratch is reused).
    #[inline(always)]
    pub fn reset(&mut self) {
        self.vlan = 0;
        self.family = 0;
        self.proto = 0;
        self.sport = 0;
        self.dport = 0;
        self.rule_port = 0;
        self.flow = false;
        self.echo = false;
        self.frag = Frag::None;
        self.frag_id = 0;
        self.icmp_type = 0;
        self.hop_limit = 0;
        self.payload_len = 0;
        self.tcp_flags = 0;
        self.tcp_seq = 0;
        self.dns_query = false;
        self.l3 = 0;
        self.l4 = 0;
        self.redirected = false;
        self.src = [0; 16];
        self.dst = [0; 16];
    }
}

/// Bounds-checked access to `[start, end)`.
#[derive(Clone, Copy)]
pub struct Bytes {
    pub start: usize,
    pub end: usize,
}

impl Bytes {
    /// The frame's length as a number. Lengths read from headers are
    /// compared against it, never added to a packet pointer: verifiers
    /// before 6.19 lose a value's range across a byte swap (`be16`) and
    /// refuse pointer arithmetic with it ("math between pkt pointer and
    /// register with unbounded min value").
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    fn ptr<T>(&self, off: usize) -> Result<*const T, Reason> {
        if self.start + off + size_of::<T>() > self.end {
            return Err(Reason::Malformed);
        }
        Ok((self.start + off) as *const T)
    }

    #[inline(always)]
    fn u8(&self, off: usize) -> Result<u8, Reason> {
        Ok(unsafe { *self.ptr::<u8>(off)? })
    }

    #[inline(always)]
    fn be16(&self, off: usize) -> Result<u16, Reason> {
        Ok(u16::from_be(unsafe {
            core::ptr::read_unaligned(self.ptr::<u16>(off)?)
        }))
    }

    #[inline(always)]
    fn be32(&self, off: usize) -> Result<u32, Reason> {
        Ok(u32::from_be(unsafe {
            core::ptr::read_unaligned(self.ptr::<u32>(off)?)
        }))
    }

    #[inline(always)]
    fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], Reason> {
        Ok(unsafe { core::ptr::read_unaligned(self.ptr::<[u8; N]>(off)?) })
    }
}

/// Parses the Ethernet header and its VLAN tags; returns the ethertype and
/// the offset of the L3 header. More than two tags is malformed: the kernel
/// would still deliver the inner packet, so it must not slip through as
/// "not IP".
#[inline(always)]
fn parse_l2(b: &Bytes, h: &mut Headers) -> Result<(u16, usize), Reason> {
    h.dst_mac = b.array::<6>(0)?;
    h.src_mac = b.array::<6>(6)?;
    let mut ethertype = b.be16(12)?;
    let mut off = ETH_HLEN;
    let mut tags = 0;
    while tags < 3 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            return Ok((ethertype, off));
        }
        if tags == 2 {
            return Err(Reason::Malformed);
        }
        if tags == 0 {
            h.vlan = b.be16(off)? & 0x0fff;
        }
        ethertype = b.be16(off + 2)?;
        off += 4;
        tags += 1;
    }
    Err(Reason::Malformed)
}

/// Parses one packet. `Ok` with `family == 0` is a non-IP frame.
#[inline(always)]
pub fn parse(b: &Bytes, h: &mut Headers) -> Result<(), Reason> {
    let (ethertype, l3) = parse_l2(b, h)?;
    h.l3 = l3 as u16;
    let (l4, ip_end) = match ethertype {
        ETH_P_IP => parse_ipv4(b, l3, h)?,
        ETH_P_IPV6 => parse_ipv6(b, l3, h)?,
        _ => return Ok(()),
    };
    if h.frag == Frag::Later {
        return Ok(());
    }
    h.l4 = l4 as u16;
    parse_l4(b, l4, ip_end, h)
}

/// Returns the offsets of the L4 header and of the end of the IP packet.
#[inline(always)]
fn parse_ipv4(b: &Bytes, l3: usize, h: &mut Headers) -> Result<(usize, usize), Reason> {
    // Fixed-size reads first and the length checks that imply them last:
    // LLVM drops bounds checks implied by earlier variable-length ones, and
    // the verifier cannot follow that reasoning.
    b.ptr::<[u8; 20]>(l3)?;
    let ver_ihl = b.u8(l3)?;
    let total = b.be16(l3 + 2)? as usize;
    let id = b.be16(l3 + 4)?;
    let frag = b.be16(l3 + 6)?;
    h.proto = b.u8(l3 + 9)?;
    h.src = v4_mapped(b.array::<4>(l3 + 12)?);
    h.dst = v4_mapped(b.array::<4>(l3 + 16)?);
    if ver_ihl >> 4 != 4 {
        return Err(Reason::Malformed);
    }
    let ihl = ((ver_ihl & 0x0f) as usize) * 4;
    if ihl < 20 || total < ihl || l3 + total > b.len() {
        return Err(Reason::Malformed);
    }
    h.family = 4;
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    if offset != 0 || more {
        h.frag_id = id as u32;
        h.frag = if offset != 0 {
            Frag::Later
        } else {
            Frag::First
        };
    }
    Ok((l3 + ihl, l3 + total))
}

#[inline(always)]
fn parse_ipv6(b: &Bytes, l3: usize, h: &mut Headers) -> Result<(usize, usize), Reason> {
    b.ptr::<[u8; 40]>(l3)?;
    let version = b.u8(l3)? >> 4;
    let payload = b.be16(l3 + 4)? as usize;
    let mut next = b.u8(l3 + 6)?;
    h.hop_limit = b.u8(l3 + 7)?;
    h.src = b.array::<16>(l3 + 8)?;
    h.dst = b.array::<16>(l3 + 24)?;
    // payload length 0 means a jumbogram, which no IoT link carries.
    if version != 6 || payload == 0 || l3 + 40 + payload > b.len() {
        return Err(Reason::Malformed);
    }
    // IPv4 addresses are kept v4-mapped inside (learned entries, flows):
    // an IPv6 packet with such an address would pass as its IPv4 twin. They
    // never belong on a wire (RFC 4291 2.5.5.2).
    if v4_mapped_addr(&h.src) || v4_mapped_addr(&h.dst) {
        return Err(Reason::Malformed);
    }
    h.family = 6;
    let end = l3 + 40 + payload;
    let mut off = l3 + 40;
    let mut i = 0;
    while i < MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let len = (b.u8(off + 1)? as usize + 1) * 8;
                next = b.u8(off)?;
                off += len;
            }
            IPPROTO_AH => {
                let len = (b.u8(off + 1)? as usize + 2) * 4;
                next = b.u8(off)?;
                off += len;
            }
            IPPROTO_FRAGMENT => {
                let fo = b.be16(off + 2)?;
                h.frag_id = b.be32(off + 4)?;
                next = b.u8(off)?;
                off += 8;
                if fo >> 3 != 0 {
                    h.frag = Frag::Later;
                    h.proto = next;
                    return Ok((off, end));
                }
                if fo & 1 != 0 {
                    h.frag = Frag::First;
                }
            }
            _ => {
                h.proto = next;
                return Ok((off, end));
            }
        }
        i += 1;
    }
    Err(Reason::Ipv6Chain)
}

/// L4 headers must lie inside the IP packet, not merely inside the frame:
/// Ethernet padding after a short packet (a tiny first fragment, say) must
/// not stand in for the header it lacks.
#[inline(always)]
fn within(l4: usize, size: usize, ip_end: usize) -> Result<(), Reason> {
    if l4 + size > ip_end {
        return Err(Reason::Malformed);
    }
    Ok(())
}

#[inline(always)]
fn parse_l4(b: &Bytes, l4: usize, ip_end: usize, h: &mut Headers) -> Result<(), Reason> {
    match h.proto {
        PROTO_TCP => {
            // A first fragment must carry the whole minimal TCP header, or a
            // tiny-fragment attack could hide the ports or flags.
            within(l4, 20, ip_end)?;
            let doff = b.u8(l4 + 12)? >> 4;
            if doff < 5 {
                return Err(Reason::Malformed);
            }
            b.ptr::<[u8; 20]>(l4)?;
            h.sport = b.be16(l4)?;
            h.dport = b.be16(l4 + 2)?;
            h.tcp_seq = b.be32(l4 + 4)?;
            h.tcp_flags = b.u8(l4 + 13)?;
            h.rule_port = h.dport;
            h.flow = true;
            h.payload_len = ip_end.saturating_sub(l4 + doff as usize * 4) as u16;
        }
        PROTO_UDP => {
            within(l4, 8, ip_end)?;
            b.ptr::<[u8; 8]>(l4)?;
            h.sport = b.be16(l4)?;
            h.dport = b.be16(l4 + 2)?;
            h.rule_port = h.dport;
            h.flow = true;
            h.payload_len = ip_end.saturating_sub(l4 + 8) as u16;
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            if (h.proto == PROTO_ICMP) != (h.family == 4) {
                // ICMP inside IPv6 or ICMPv6 inside IPv4: an unknown
                // protocol there, judged by protocol alone.
                return Ok(());
            }
            within(l4, 4, ip_end)?;
            let ty = b.u8(l4)?;
            b.ptr::<[u8; 4]>(l4)?;
            h.icmp_type = ty;
            h.rule_port = ty as u16;
            if is_echo(h.proto, ty) {
                within(l4, 8, ip_end)?;
                b.ptr::<[u8; 8]>(l4)?;
                h.sport = b.be16(l4 + 4)?;
                h.dport = 0;
                h.flow = true;
                h.echo = true;
            }
        }
        _ => {
            // No ports: rules for "any" port of this protocol match, and the
            // protocol pair is tracked as a flow.
            h.flow = true;
        }
    }
    Ok(())
}

/// Echo request or reply: the identifier makes it a trackable flow.
#[inline(always)]
pub fn is_echo(proto: u8, ty: u8) -> bool {
    if proto == PROTO_ICMP {
        ty == 8 || ty == 0
    } else {
        ty == 128 || ty == 129
    }
}

/// ::ffff:0:0/96.
#[inline(always)]
fn v4_mapped_addr(a: &[u8; 16]) -> bool {
    a[..10] == [0; 10] && a[10] == 0xff && a[11] == 0xff
}
