//! A userspace model of the kernel's egress judge and inbound observer
//! (`ebpf/src/`: `parse`, `identity`, `flow`, `from_device`, `to_device`),
//! written from reading
//! them but sharing none of their code: the differential fuzz target and
//! `tests/tests/model.rs` run frames through both and fail on any
//! disagreement in verdict, reason or device.
//!
//! The policy comes from the daemon's compiler (`Compiled`), matched here
//! by plain scans: a rule allows when any rule of any covering prefix does,
//! which is what the daemon's prefix folding and the kernel's LPM tries must
//! add up to. Flows are modelled without time (a run is far shorter than
//! any idle timeout); learned entries are either alive or expired. DNS
//! learning is off (the harness runs no DNS service), so no query is copied
//! and no answer held.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use iotfence::policy::compile::Compiled;
use iotfence_common::{
    consts::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    PortRule, Reason, Verdict,
};
use ipnet::IpNet;

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

/// A flow as the kernel keys it, from the device's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FlowId {
    Conn(IpAddr, IpAddr, u16, u16, u8),
    Train(IpAddr, IpAddr, u32, u8),
}

/// A flow's device and the MAC that opened it.
type Owner = (u32, [u8; 6]);

/// A snapshot of the model's flows.
pub struct Flows(HashMap<FlowId, Owner>);

#[derive(Clone, Debug)]
struct Device {
    id: u32,
    profile: u16,
    mac: Option<[u8; 6]>,
    nets: Vec<IpNet>,
    /// MAC and address must both match for this family (`match:
    /// mac-and-ip` with addresses of it).
    bound: [bool; 2],
}

struct Profile {
    audit: bool,
    egress: Vec<(IpNet, Vec<PortRule>)>,
    inbound: Vec<(IpNet, Vec<PortRule>)>,
}

/// The model's verdict on one device-originated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub device: u32,
    pub verdict: Verdict,
    pub reason: Reason,
}

pub struct Model {
    devices: Vec<Device>,
    profiles: Vec<Profile>,
    default_profile: u16,
    flows: HashMap<FlowId, Owner>,
    /// The router's own IPv6 addresses (as `Harness::new` writes them).
    router_addrs: Vec<IpAddr>,
    /// (device, address) -> learned rules, each alive or expired.
    learned: HashMap<(u32, IpAddr), Vec<(PortRule, bool)>>,
}

fn family_index(a: &IpAddr) -> usize {
    if a.is_ipv4() {
        0
    } else {
        1
    }
}

fn rules(list: &[(IpNet, iotfence_common::RuleSet)]) -> Vec<(IpNet, Vec<PortRule>)> {
    list.iter()
        .map(|(n, r)| (*n, r.rules[..r.count as usize].to_vec()))
        .collect()
}

impl Model {
    pub fn new(policy: &Compiled) -> Self {
        let devices = policy
            .devices
            .iter()
            .map(|d| {
                let mut bound = [false; 2];
                if d.mac.is_some() && !d.mac_or_ip {
                    for n in &d.nets {
                        bound[family_index(&n.addr())] = true;
                    }
                }
                Device {
                    id: d.id,
                    profile: d.profile,
                    mac: d.mac,
                    nets: d.nets.clone(),
                    bound,
                }
            })
            .collect();
        let profiles = policy
            .profiles
            .iter()
            .map(|p| Profile {
                audit: p.mode == iotfence_common::Mode::Audit as u8,
                egress: rules(&p.egress),
                inbound: rules(&p.inbound),
            })
            .collect();
        Self {
            devices,
            profiles,
            default_profile: policy.default_profile,
            flows: HashMap::new(),
            router_addrs: vec![crate::fixtures::ROUTER_IP6.parse().unwrap()],
            learned: HashMap::new(),
        }
    }

    /// Forgets every flow (the fuzz target clears the kernel's too).
    pub fn forget_flows(&mut self) {
        self.flows.clear();
    }

    /// The flows, to put back when the kernel refused to run a frame.
    pub fn clone_flows(&self) -> Flows {
        Flows(self.flows.clone())
    }

    pub fn restore_flows(&mut self, saved: Flows) {
        self.flows = saved.0;
    }

    /// A learned entry as DNS learning writes it; `alive: false` = expired.
    pub fn learn(&mut self, device: u32, addr: IpAddr, rule: PortRule, alive: bool) {
        self.learned
            .entry((device, addr))
            .or_default()
            .push((rule, alive));
    }

    /// The device record of the sender (`towards`: of the receiver).
    fn identify(&self, f: &Frame, towards: bool) -> (u32, u16) {
        let mac = if towards { f.dst_mac } else { f.src_mac };
        let addr = if f.family == 0 {
            None
        } else if towards {
            f.dst
        } else {
            f.src
        };
        let unknown = (0, self.default_profile);
        let by_mac = self.devices.iter().find(|d| d.mac == Some(mac));
        // The device whose address or prefix covers `addr` most narrowly.
        let by_addr = addr.and_then(|a| {
            self.devices
                .iter()
                .flat_map(|d| d.nets.iter().map(move |n| (d, n)))
                .filter(|(_, n)| n.contains(&a))
                .max_by_key(|(_, n)| n.prefix_len())
                .map(|(d, _)| d)
        });
        match (by_mac, addr) {
            (Some(d), None) => (d.id, d.profile),
            (Some(d), Some(a)) if !d.bound[family_index(&a)] => (d.id, d.profile),
            (Some(d), Some(a)) => {
                let host = d
                    .nets
                    .iter()
                    .any(|n| n.contains(&a) && n.prefix_len() == n.max_prefix_len());
                if host || by_addr.is_some_and(|o| o.id == d.id) {
                    (d.id, d.profile)
                } else {
                    unknown
                }
            }
            (None, Some(a)) => match by_addr {
                Some(d) if !d.bound[family_index(&a)] => (d.id, d.profile),
                _ => unknown,
            },
            (None, None) => unknown,
        }
    }

    fn mode_audit(&self, profile: u16) -> bool {
        self.profiles[profile as usize].audit
    }

    fn conn(f: &Frame) -> FlowId {
        FlowId::Conn(f.src.unwrap(), f.dst.unwrap(), f.sport, f.dport, f.proto)
    }

    fn train(f: &Frame) -> FlowId {
        FlowId::Train(f.src.unwrap(), f.dst.unwrap(), f.frag_id, f.proto)
    }

    /// Judges a frame a device sent; updates the flows as the kernel would.
    pub fn judge(&mut self, bytes: &[u8]) -> Judgement {
        let (f, parsed) = parse(bytes);
        if parsed.is_ok() && f.family != 0 {
            // A flow counts only from the MAC that opened it.
            let ours = |o: &&Owner| o.1 == f.src_mac;
            let live = match f.frag {
                Frag::Later => self
                    .flows
                    .get(&Self::train(&f))
                    .filter(ours)
                    .map(|o| (o.0, Reason::Fragment)),
                _ if f.trackable => self
                    .flows
                    .get(&Self::conn(&f))
                    .filter(ours)
                    .map(|o| (o.0, Reason::Flow)),
                _ => None,
            };
            if let Some((device, reason)) = live {
                if f.frag == Frag::First {
                    self.flows.insert(Self::train(&f), (device, f.src_mac));
                }
                return Judgement {
                    device,
                    verdict: Verdict::Allowed,
                    reason,
                };
            }
        }
        let (device, profile) = self.identify(&f, false);
        let reason = match parsed {
            Err(r) => r,
            Ok(()) => self.decide(&f, device, profile),
        };
        let verdict = if reason.allows() {
            Verdict::Allowed
        } else if self.mode_audit(profile) {
            Verdict::Audited
        } else {
            Verdict::Dropped
        };
        if matches!(reason, Reason::Rule | Reason::Learned) {
            if f.trackable {
                self.flows.insert(Self::conn(&f), (device, f.src_mac));
            }
            if f.frag == Frag::First {
                self.flows.insert(Self::train(&f), (device, f.src_mac));
            }
        }
        Judgement {
            device,
            verdict,
            reason,
        }
    }

    fn decide(&self, f: &Frame, device: u32, profile: u16) -> Reason {
        if f.family == 0 {
            return Reason::NotIp;
        }
        if link_icmpv6(f, &self.router_addrs) {
            return Reason::NeighborDiscovery;
        }
        if f.frag == Frag::Later {
            return Reason::UnknownFragment;
        }
        let dst = f.dst.unwrap();
        let mut expired = false;
        if let Some(list) = self.learned.get(&(device, dst)) {
            let matching = list.iter().filter(|(r, _)| r.matches(f.proto, f.port));
            for (_, alive) in matching {
                if *alive {
                    return Reason::Learned;
                }
                expired = true;
            }
        }
        let p = &self.profiles[profile as usize];
        if allows(&p.egress, dst, f.proto, f.port) {
            Reason::Rule
        } else if expired {
            Reason::Expired
        } else {
            Reason::NotAllowed
        }
    }

    /// A frame the router sends towards a device: opens the inbound flow
    /// its profile allows, so the device's replies pass.
    pub fn observe(&mut self, bytes: &[u8]) {
        let (f, parsed) = parse(bytes);
        if parsed.is_err() || f.family == 0 || !f.trackable || f.frag == Frag::Later {
            return;
        }
        let (device, profile) = self.identify(&f, true);
        let p = &self.profiles[profile as usize];
        let (src, dst) = (f.src.unwrap(), f.dst.unwrap());
        if !allows(&p.inbound, src, f.proto, f.port) {
            return;
        }
        // Only what starts a connection from the source: a TCP SYN without
        // ACK, an echo request; anything for other protocols.
        let starts = match f.proto {
            PROTO_TCP => f.tcp_flags & 0x12 == 0x02,
            PROTO_ICMP | PROTO_ICMPV6 => !f.echo || matches!(f.icmp_type, Some(8 | 128)),
            _ => true,
        };
        if !starts {
            return;
        }
        // Seen from the device: its address and port are the source; an
        // echo keeps its identifier in the source port both ways.
        let (sport, dport) = if f.echo {
            (f.sport, 0)
        } else {
            (f.dport, f.sport)
        };
        // A flow of this device's MAC is refreshed; any other is replaced.
        let id = FlowId::Conn(dst, src, sport, dport, f.proto);
        if self.flows.get(&id).map(|o| o.1) != Some(f.dst_mac) {
            self.flows.insert(id, (device, f.dst_mac));
        }
    }
}

fn allows(list: &[(IpNet, Vec<PortRule>)], addr: IpAddr, proto: u8, port: u16) -> bool {
    list.iter()
        .filter(|(n, _)| n.contains(&addr))
        .any(|(_, rules)| rules.iter().any(|r| r.matches(proto, port)))
}

/// ND and MLD a device needs for the link: RS/NS/NA with hop limit 255 to
/// link scope or the router itself, MLD with hop limit 1.
fn link_icmpv6(f: &Frame, router: &[IpAddr]) -> bool {
    if f.family != 6 || f.proto != PROTO_ICMPV6 || f.frag != Frag::Whole {
        return false;
    }
    let link_scope = match f.dst {
        Some(IpAddr::V6(a)) => {
            let o = a.octets();
            (o[0] == 0xfe && o[1] & 0xc0 == 0x80) || (o[0] == 0xff && o[1] & 0x0f == 0x02)
        }
        _ => false,
    };
    match f.icmp_type {
        Some(133 | 135 | 136) => {
            f.hop_limit == 255 && (link_scope || f.dst.is_some_and(|d| router.contains(&d)))
        }
        Some(130..=132 | 143) => f.hop_limit == 1,
        _ => false,
    }
}
