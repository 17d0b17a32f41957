//! The fluent frame builder: `Packet::eth(src, dst)`, then optional VLAN
//! tags, one network layer, one transport layer, then `build()`. Lengths
//! are computed from what is actually carried, so a truncated transport
//! header (`cut`) still gives a consistent IP header, and malformed
//! variants come from patching the built bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{encode, ETH_ARP, ETH_IP, ETH_IPV6, TPID_8021AD, TPID_8021Q};

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// PadN option filling an 8-byte options header: its hdr-ext-len is 0.
const PADN: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];

#[derive(Clone, Debug)]
pub struct Packet {
    src: [u8; 6],
    dst: [u8; 6],
    /// (TPID, VLAN id), outermost first.
    tags: Vec<(u16, u16)>,
    l3: L3,
    l4: L4,
    /// Keep only this many bytes of the transport layer.
    cut: Option<usize>,
    /// Bytes after the IP packet (Ethernet padding).
    trailer: Vec<u8>,
}

#[derive(Clone, Debug)]
enum L3 {
    None,
    Raw(u16, Vec<u8>),
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        id: u16,
        frag: u16,
        options: Vec<u8>,
        checksum: bool,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hops: u8,
        /// (header type, bytes); each one's next-header byte is filled in.
        exts: Vec<(u8, Vec<u8>)>,
    },
}

#[derive(Clone, Debug)]
enum L4 {
    None,
    Raw(u8, Vec<u8>),
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
        sum: u16,
        data: Vec<u8>,
    },
    Icmp {
        proto: u8,
        ty: u8,
        id: u16,
    },
}

impl Packet {
    pub fn eth(src: [u8; 6], dst: [u8; 6]) -> Self {
        Packet {
            src,
            dst,
            tags: Vec::new(),
            l3: L3::None,
            l4: L4::None,
            cut: None,
            trailer: Vec::new(),
        }
    }

    /// ARP request (who-has `target`) from `mac`, broadcast.
    pub fn arp_request(mac: [u8; 6], src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
        a.extend_from_slice(&mac);
        a.extend_from_slice(&src.octets());
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&target.octets());
        Packet::eth(mac, BROADCAST_MAC).ether(ETH_ARP, &a).build()
    }

    /// An 802.1Q tag (pushed after any earlier tags).
    pub fn vlan(mut self, vid: u16) -> Self {
        self.tags.push((TPID_8021Q, vid));
        self
    }

    /// An 802.1ad (service) tag.
    pub fn svlan(mut self, vid: u16) -> Self {
        self.tags.push((TPID_8021AD, vid));
        self
    }

    /// Any network layer as raw bytes behind `ethertype`.
    pub fn ether(mut self, ethertype: u16, bytes: &[u8]) -> Self {
        self.l3 = L3::Raw(ethertype, bytes.to_vec());
        self
    }

    /// IPv4, TTL 64, id 1, no options, not fragmented, checksum zero (the
    /// datapath never reads it).
    pub fn ipv4(mut self, src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        self.l3 = L3::V4 {
            src,
            dst,
            ttl: 64,
            id: 1,
            frag: 0,
            options: Vec::new(),
            checksum: false,
        };
        self
    }

    /// IPv6, hop limit 64, no extension headers.
    pub fn ipv6(mut self, src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        self.l3 = L3::V6 {
            src,
            dst,
            hops: 64,
            exts: Vec::new(),
        };
        self
    }

    /// IPv4 with its header checksum (bridges with br_netfilter check it)
    /// or IPv6, as the addresses are.
    pub fn ip(self, src: IpAddr, dst: IpAddr) -> Self {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self.ipv4(s, d).header_checksum(),
            (IpAddr::V6(s), IpAddr::V6(d)) => self.ipv6(s, d),
            _ => panic!("{src} and {dst} are of different families"),
        }
    }

    fn v4(&mut self) -> (&mut u8, &mut u16, &mut u16, &mut Vec<u8>, &mut bool) {
        match &mut self.l3 {
            L3::V4 {
                ttl,
                id,
                frag,
                options,
                checksum,
                ..
            } => (ttl, id, frag, options, checksum),
            _ => panic!("an IPv4 field set on a packet that is not IPv4"),
        }
    }

    /// TTL (IPv4) or hop limit (IPv6).
    pub fn ttl(mut self, value: u8) -> Self {
        match &mut self.l3 {
            L3::V4 { ttl, .. } => *ttl = value,
            L3::V6 { hops, .. } => *hops = value,
            _ => panic!("ttl on a packet that is not IP"),
        }
        self
    }

    pub fn id(mut self, value: u16) -> Self {
        *self.v4().1 = value;
        self
    }

    /// The IPv4 flags and fragment offset field as a whole (0x2000: more
    /// fragments; low 13 bits: offset in 8-byte units).
    pub fn frag(mut self, value: u16) -> Self {
        *self.v4().2 = value;
        self
    }

    /// IPv4 options, a multiple of 4 bytes.
    pub fn options(mut self, bytes: &[u8]) -> Self {
        assert!(bytes.len().is_multiple_of(4) && bytes.len() <= 40);
        *self.v4().3 = bytes.to_vec();
        self
    }

    pub fn header_checksum(mut self) -> Self {
        *self.v4().4 = true;
        self
    }

    /// An IPv6 extension header (`bytes` a multiple of 8; its first byte,
    /// next header, is filled in).
    pub fn ext(mut self, kind: u8, bytes: &[u8]) -> Self {
        match &mut self.l3 {
            L3::V6 { exts, .. } => exts.push((kind, bytes.to_vec())),
            _ => panic!("an extension header on a packet that is not IPv6"),
        }
        self
    }

    /// An 8-byte hop-by-hop options header (PadN).
    pub fn hop_by_hop(self) -> Self {
        self.ext(0, &PADN)
    }

    /// An 8-byte routing header.
    pub fn routing(self) -> Self {
        self.ext(43, &PADN)
    }

    /// An 8-byte destination options header (PadN).
    pub fn dest_opts(self) -> Self {
        self.ext(60, &PADN)
    }

    /// IPv6 fragment header: `offset` in 8-byte units.
    pub fn fragment(self, offset: u16, more: bool, id: u32) -> Self {
        let mut b = vec![0, 0];
        b.extend_from_slice(&((offset << 3) | more as u16).to_be_bytes());
        b.extend_from_slice(&id.to_be_bytes());
        self.ext(44, &b)
    }

    /// TCP with seq 1, no ack number, window 0xffff and no flags yet.
    pub fn tcp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Tcp {
            sport,
            dport,
            flags: 0,
        };
        self
    }

    pub fn flags(mut self, value: u8) -> Self {
        match &mut self.l4 {
            L4::Tcp { flags, .. } => *flags = value,
            _ => panic!("tcp flags on a packet that is not TCP"),
        }
        self
    }

    /// UDP with checksum 0 (none) and no data yet.
    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp {
            sport,
            dport,
            sum: 0,
            data: Vec::new(),
        };
        self
    }

    pub fn data(mut self, bytes: &[u8]) -> Self {
        match &mut self.l4 {
            L4::Udp { data, .. } => *data = bytes.to_vec(),
            _ => panic!("udp data on a packet that is not UDP"),
        }
        self
    }

    /// The UDP checksum field, as given (a wrong one makes the stack drop
    /// the datagram).
    pub fn udp_checksum(mut self, value: u16) -> Self {
        match &mut self.l4 {
            L4::Udp { sum, .. } => *sum = value,
            _ => panic!("a udp checksum on a packet that is not UDP"),
        }
        self
    }

    /// ICMP message of type `ty` with an identifier (echo) and 8 bytes of
    /// data.
    pub fn icmp(mut self, ty: u8, id: u16) -> Self {
        self.l4 = L4::Icmp { proto: 1, ty, id };
        self
    }

    /// ICMPv6, laid out as `icmp`.
    pub fn icmpv6(mut self, ty: u8, id: u16) -> Self {
        self.l4 = L4::Icmp { proto: 58, ty, id };
        self
    }

    /// Any transport layer as raw bytes behind protocol `proto`.
    pub fn payload(mut self, proto: u8, bytes: &[u8]) -> Self {
        self.l4 = L4::Raw(proto, bytes.to_vec());
        self
    }

    /// Keeps only the first `len` bytes of the transport layer; the IP
    /// lengths count what is kept.
    pub fn cut(mut self, len: usize) -> Self {
        self.cut = Some(len);
        self
    }

    /// Bytes after the IP packet, inside the frame (Ethernet padding).
    pub fn trailer(mut self, bytes: &[u8]) -> Self {
        self.trailer = bytes.to_vec();
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let (proto, mut l4) = match &self.l4 {
            L4::None => (0, Vec::new()),
            L4::Raw(proto, bytes) => (*proto, bytes.clone()),
            L4::Tcp {
                sport,
                dport,
                flags,
            } => (6, encode::tcp(*sport, *dport, *flags)),
            L4::Udp {
                sport,
                dport,
                sum,
                data,
            } => (17, encode::udp(*sport, *dport, *sum, data)),
            L4::Icmp { proto, ty, id } => (*proto, encode::icmp(*ty, *id)),
        };
        if let Some(len) = self.cut {
            l4.truncate(len);
        }
        let (ethertype, l3) = match &self.l3 {
            L3::None => panic!("a frame without a network layer"),
            L3::Raw(t, bytes) => (*t, bytes.clone()),
            L3::V4 {
                src,
                dst,
                ttl,
                id,
                frag,
                options,
                checksum,
            } => {
                let mut p = encode::ipv4_header(*src, *dst, proto, options, *frag, *id, *ttl);
                p.extend_from_slice(&l4);
                let total = p.len() as u16;
                p[2..4].copy_from_slice(&total.to_be_bytes());
                if *checksum {
                    encode::set_ipv4_checksum(&mut p);
                }
                (ETH_IP, p)
            }
            L3::V6 {
                src,
                dst,
                hops,
                exts,
            } => (
                ETH_IPV6,
                encode::ipv6_packet(*src, *dst, proto, *hops, exts, &l4),
            ),
        };
        let mut f = Vec::with_capacity(18 + 4 * self.tags.len() + l3.len());
        f.extend_from_slice(&self.dst);
        f.extend_from_slice(&self.src);
        for (tpid, vid) in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&l3);
        f.extend_from_slice(&self.trailer);
        f
    }
}

impl From<Packet> for Vec<u8> {
    fn from(p: Packet) -> Vec<u8> {
        p.build()
    }
}
