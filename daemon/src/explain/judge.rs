//! Judging a device's frame and observing one towards a device, as the
//! kernel's `from_device` and `to_device` do.

use std::net::IpAddr;

use iotfence_common::{
    consts::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP},
    PortRule, Reason, Verdict,
};
use ipnet::IpNet;

use super::{
    model::{family_index, FlowId, Model, Owner},
    parse::{parse, Frag, Frame},
};

/// The model's verdict on one device-originated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub device: u32,
    pub verdict: Verdict,
    pub reason: Reason,
}

/// How the sender was identified (`Model::identify_why`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identified {
    ByMac,
    /// By the device's address or prefix covering the source address.
    ByAddress(IpNet),
    /// By MAC, and the source address is one of the device's own
    /// (MAC and address must both match for this family).
    ByMacAndAddress,
    /// The MAC is device `.0`'s, but the source address is not one of its
    /// addresses: judged as an unknown device.
    AddressMismatch(u32),
    /// The address is in device `.0`'s prefix, which is bound to its MAC,
    /// and another MAC sent it.
    MacMismatch(u32),
    Unknown,
}

impl Model {
    /// The device record of the sender (`towards`: of the receiver).
    fn identify(&self, f: &Frame, towards: bool) -> (u32, u16) {
        let (id, profile, _) = self.identify_why(f, towards);
        (id, profile)
    }

    /// `identify`, and how.
    pub(super) fn identify_why(&self, f: &Frame, towards: bool) -> (u32, u16, Identified) {
        let mac = if towards { f.dst_mac } else { f.src_mac };
        let addr = if f.family == 0 {
            None
        } else if towards {
            f.dst
        } else {
            f.src
        };
        let unknown = |why| (0, self.default_profile, why);
        let by_mac = self.devices.iter().find(|d| d.mac == Some(mac));
        // The device whose address or prefix covers `addr` most narrowly.
        let by_addr = addr.and_then(|a| {
            self.devices
                .iter()
                .flat_map(|d| d.nets.iter().map(move |n| (d, n)))
                .filter(|(_, n)| n.contains(&a))
                .max_by_key(|(_, n)| n.prefix_len())
        });
        match (by_mac, addr) {
            (Some(d), None) => (d.id, d.profile, Identified::ByMac),
            (Some(d), Some(a)) if !d.bound[family_index(&a)] => {
                (d.id, d.profile, Identified::ByMac)
            }
            (Some(d), Some(a)) => {
                let host = d
                    .nets
                    .iter()
                    .any(|n| n.contains(&a) && n.prefix_len() == n.max_prefix_len());
                if host || by_addr.is_some_and(|(o, _)| o.id == d.id) {
                    (d.id, d.profile, Identified::ByMacAndAddress)
                } else {
                    unknown(Identified::AddressMismatch(d.id))
                }
            }
            (None, Some(a)) => match by_addr {
                Some((d, n)) if !d.bound[family_index(&a)] => {
                    (d.id, d.profile, Identified::ByAddress(*n))
                }
                Some((d, _)) => unknown(Identified::MacMismatch(d.id)),
                None => unknown(Identified::Unknown),
            },
            (None, None) => unknown(Identified::Unknown),
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
        let (j, _) = self.assess(&f, parsed);
        match j.reason {
            Reason::Flow | Reason::Fragment if f.frag == Frag::First => {
                self.flows.insert(Self::train(&f), (j.device, f.src_mac));
            }
            Reason::Rule | Reason::Learned => {
                if f.trackable {
                    self.flows.insert(Self::conn(&f), (j.device, f.src_mac));
                }
                if f.frag == Frag::First {
                    self.flows.insert(Self::train(&f), (j.device, f.src_mac));
                }
            }
            _ => {}
        }
        j
    }

    /// The judgement on a parsed frame, and how its sender was identified
    /// (none for a frame of a live flow, which names its device), without
    /// changing any state.
    pub(super) fn assess(
        &self,
        f: &Frame,
        parsed: Result<(), Reason>,
    ) -> (Judgement, Option<Identified>) {
        if parsed.is_ok() && f.family != 0 {
            // A flow counts only from the MAC that opened it.
            let ours = |o: &&Owner| o.1 == f.src_mac;
            let live = match f.frag {
                Frag::Later => self
                    .flows
                    .get(&Self::train(f))
                    .filter(ours)
                    .map(|o| (o.0, Reason::Fragment)),
                _ if f.trackable => self
                    .flows
                    .get(&Self::conn(f))
                    .filter(ours)
                    .map(|o| (o.0, Reason::Flow)),
                _ => None,
            };
            if let Some((device, reason)) = live {
                let j = Judgement {
                    device,
                    verdict: Verdict::Allowed,
                    reason,
                };
                return (j, None);
            }
        }
        let (device, profile, how) = self.identify_why(f, false);
        let reason = match parsed {
            Err(r) => r,
            Ok(()) => self.decide(f, device, profile),
        };
        let verdict = if reason.allows() {
            Verdict::Allowed
        } else if self.mode_audit(profile) {
            Verdict::Audited
        } else {
            Verdict::Dropped
        };
        let j = Judgement {
            device,
            verdict,
            reason,
        };
        (j, Some(how))
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
