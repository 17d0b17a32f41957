//! One ACE of a MUD file read into what the policy language can hold: the
//! peer (the destination of a from-device ACE, the source of a to-device
//! one), protocol, port ranges, ICMP type, the TCP direction and the
//! action. Whatever else the ACE matches is reported as a limitation: the
//! profile does not check it, so it allows more than the ACE did.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{
    model::{Ace, IpMatch, L4Match, MudMatch, PortMatch, Rest},
    notes::Notes,
    vars::Class,
};
use crate::policy::pattern::Pattern;

/// The direction of a policy (`from-device-policy`, `to-device-policy`) or
/// of a TCP connection's opening (`direction-initiated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    From,
    To,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// A DNS name; `below`: every name under it (iotfence's extension).
    Name {
        name: String,
        below: bool,
    },
    Net(IpNet),
    Class(Class),
    /// The ACE names no peer: every address of its family.
    Any,
}

pub type Ports = Vec<(u16, u16)>;

#[derive(Clone, Debug)]
pub struct Entry {
    pub dir: Dir,
    pub acl: String,
    pub v6: bool,
    pub name: String,
    pub peer: Peer,
    /// None: every protocol.
    pub proto: Option<u8>,
    pub src: Option<Ports>,
    pub dst: Option<Ports>,
    pub icmp_type: Option<u8>,
    pub initiated: Option<Dir>,
    pub accept: bool,
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// Reads one ACE of the ACL `acl` (`v6`: an IPv6 ACL). Err: the ACE is
/// malformed (the whole import fails, naming it).
pub fn read(dir: Dir, acl: &str, v6: bool, ace: &Ace, notes: &mut Notes) -> Result<Entry, String> {
    let at = |m: &str| format!("ACL {acl}, ACE {}: {m}", ace.name);
    let name = ace.name.clone();
    let m = &ace.matches;
    let widened = |notes: &mut Notes, what: &str, rest: &Rest| {
        if !rest.is_empty() {
            let keys: Vec<&str> = rest.keys().map(String::as_str).collect();
            notes.add(
                &name,
                format!("also matches {what}{}; the profile does not check it, so it allows such traffic whatever its value (wider than the ACE)", keys.join(", ")),
            );
        }
    };
    widened(notes, "", &ace.rest);
    widened(notes, "", &m.rest);
    let (ip, v6) = match (&m.ipv4, &m.ipv6) {
        (Some(_), Some(_)) => return Err(at("matches both ipv4 and ipv6")),
        (Some(ip), None) => (Some(ip), false),
        (None, Some(ip)) => (Some(ip), true),
        (None, None) => (None, v6),
    };
    if let Some(ip) = ip {
        widened(notes, "the IP header's ", &ip.rest);
    }

    let mut peers = Vec::new();
    if let Some(ip) = ip {
        peers.extend(ip_peers(dir, ip, v6, &name, notes).map_err(|e| at(&e))?);
    }
    if let Some(c) = &m.mud {
        widened(notes, "the MUD classes ", &c.rest);
        peers.extend(classes(c).into_iter().map(Peer::Class));
    }
    // Several peers in one ACE must all match (an intersection): the most
    // specific one stands for the ACE, which widens it.
    peers.sort_by_key(|p| match p {
        Peer::Net(_) => 0,
        Peer::Name { .. } => 1,
        _ => 2,
    });
    if peers.len() > 1 {
        let all: Vec<String> = peers.iter().map(describe).collect();
        notes.add(
            &name,
            format!("matches {} together (all must hold); the profile keeps only {}, so it allows more than the ACE", all.join(" and "), all[0]),
        );
    }
    let peer = peers.into_iter().next().unwrap_or(Peer::Any);

    let l4: Vec<(&L4Match, u8)> = [(&m.tcp, TCP), (&m.udp, UDP)]
        .into_iter()
        .filter_map(|(c, p)| c.as_ref().map(|c| (c, p)))
        .collect();
    if l4.len() > 1 {
        return Err(at("matches both tcp and udp"));
    }
    let icmp_proto = if v6 { ICMPV6 } else { ICMP };
    let implied = l4
        .first()
        .map(|(_, p)| *p)
        .or(m.icmp.as_ref().map(|_| icmp_proto));
    let proto = match (ip.and_then(|i| i.protocol), implied) {
        (Some(p), Some(q)) if p != q => {
            return Err(at(&format!(
                "protocol {p} with the match container of protocol {q}"
            )))
        }
        (p, q) => p.or(q),
    };
    let (mut src, mut dst, mut initiated) = (None, None, None);
    if let Some((c, p)) = l4.first() {
        widened(
            notes,
            if *p == TCP {
                "the TCP header's "
            } else {
                "the UDP header's "
            },
            &c.rest,
        );
        src = c
            .source_port
            .as_ref()
            .map(ports)
            .transpose()
            .map_err(|e| at(&e))?;
        dst = c
            .destination_port
            .as_ref()
            .map(ports)
            .transpose()
            .map_err(|e| at(&e))?;
        initiated = match c.direction_initiated.as_deref() {
            None => None,
            Some("from-device") => Some(Dir::From),
            Some("to-device") => Some(Dir::To),
            Some(other) => {
                return Err(at(&format!(
                    "direction-initiated `{other}`: from-device or to-device"
                )))
            }
        };
        if initiated.is_some() && *p != TCP {
            notes.add(
                &name,
                "direction-initiated on UDP, which has no connection set-up: ignored".into(),
            );
            initiated = None;
        }
    }
    let mut icmp_type = None;
    if let Some(i) = &m.icmp {
        widened(notes, "the ICMP header's ", &i.rest);
        icmp_type = i.icmp_type;
        if let Some(code) = i.code {
            notes.add(&name, format!("matches ICMP code {code}; the profile allows every code of the type (wider than the ACE)"));
        }
    }
    let accept = match ace.actions.forwarding.as_deref().map(unprefixed) {
        Some("accept") => true,
        Some("drop") | Some("reject") => false,
        Some(other) => {
            return Err(at(&format!(
                "forwarding action `{other}`: accept, drop or reject"
            )))
        }
        None => return Err(at("no forwarding action (RFC 8519 makes it mandatory)")),
    };
    if !ace.actions.rest.is_empty() {
        let keys: Vec<&str> = ace.actions.rest.keys().map(String::as_str).collect();
        notes.add(&name, format!("asks for the actions {}, which iotfence does not take (it counts and reports drops, not matches)", keys.join(", ")));
    }
    Ok(Entry {
        dir,
        acl: acl.to_string(),
        v6,
        name,
        peer,
        proto,
        src,
        dst,
        icmp_type,
        initiated,
        accept,
    })
}

/// A YANG identity without its module prefix.
pub fn unprefixed(s: &str) -> &str {
    s.rsplit_once(':').map_or(s, |(_, n)| n)
}

/// The peers an `ipv4` / `ipv6` container names: the far side of the ACE.
/// The device's own side (a from-device ACE's source) is not checked.
fn ip_peers(
    dir: Dir,
    ip: &IpMatch,
    v6: bool,
    ace: &str,
    notes: &mut Notes,
) -> Result<Vec<Peer>, String> {
    let (dst4, src4, dst6, src6) = (
        &ip.destination_ipv4_network,
        &ip.source_ipv4_network,
        &ip.destination_ipv6_network,
        &ip.source_ipv6_network,
    );
    let (far_net, near_net, far_name, near_name) = match (dir, v6) {
        (Dir::From, false) => (dst4, src4, &ip.dst_dnsname, &ip.src_dnsname),
        (Dir::From, true) => (dst6, src6, &ip.dst_dnsname, &ip.src_dnsname),
        (Dir::To, false) => (src4, dst4, &ip.src_dnsname, &ip.dst_dnsname),
        (Dir::To, true) => (src6, dst6, &ip.src_dnsname, &ip.dst_dnsname),
    };
    let other_family = if v6 { (dst4, src4) } else { (dst6, src6) };
    if other_family.0.is_some() || other_family.1.is_some() {
        return Err(format!(
            "an {} network in an {} match",
            if v6 { "IPv4" } else { "IPv6" },
            if v6 { "ipv6" } else { "ipv4" }
        ));
    }
    if near_net.is_some() || near_name.is_some() {
        notes.add(ace, "also matches the device's own address or name; the profile does not check it (the device is known by its entry in the site policy)".into());
    }
    let mut out = Vec::new();
    if let Some(n) = far_net {
        let net: IpNet = n
            .parse()
            .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("`{n}` is not a network"))?;
        if net.addr().is_ipv6() != v6 {
            return Err(format!(
                "`{n}` is not an {} network",
                if v6 { "IPv6" } else { "IPv4" }
            ));
        }
        out.push(Peer::Net(net.trunc()));
    }
    if let Some(n) = far_name {
        let below = ip.dnsname_wildcard;
        let text = if below { format!("*.{n}") } else { n.clone() };
        match Pattern::parse(&text) {
            Ok(p) => out.push(Peer::Name {
                name: match p {
                    Pattern::Exact(e) | Pattern::Below(e) => e,
                },
                below,
            }),
            Err(e) => return Err(format!("dnsname: {e}")),
        }
    }
    Ok(out)
}

fn classes(m: &MudMatch) -> Vec<Class> {
    let mut out = Vec::new();
    if m.local_networks.is_some() {
        out.push(Class::LocalNetworks);
    }
    if m.same_manufacturer.is_some() {
        out.push(Class::SameManufacturer);
    }
    if let Some(x) = &m.manufacturer {
        out.push(Class::Manufacturer(x.clone()));
    }
    if let Some(x) = &m.model {
        out.push(Class::Model(x.clone()));
    }
    if let Some(x) = &m.controller {
        out.push(Class::Controller(x.clone()));
    }
    if m.my_controller.is_some() {
        out.push(Class::MyController);
    }
    out
}

/// RFC 8519's port match as inclusive ranges (`neq` is two).
fn ports(p: &PortMatch) -> Result<Ports, String> {
    match (p.lower_port, p.upper_port, p.operator.as_deref(), p.port) {
        (Some(lo), Some(hi), None, None) if lo <= hi => Ok(vec![(lo, hi)]),
        (Some(lo), Some(hi), None, None) => Err(format!("port range {lo}-{hi} is empty")),
        (None, None, op, Some(n)) => match op.unwrap_or("eq") {
            "eq" => Ok(vec![(n, n)]),
            "lte" => Ok(vec![(0, n)]),
            "gte" => Ok(vec![(n, u16::MAX)]),
            "neq" => {
                let mut v = Vec::new();
                if n > 0 {
                    v.push((0, n - 1));
                }
                if n < u16::MAX {
                    v.push((n + 1, u16::MAX));
                }
                Ok(v)
            }
            other => Err(format!("port operator `{other}`: eq, lte, gte or neq")),
        },
        _ => Err("a port match is lower-port and upper-port, or operator and port".into()),
    }
}

/// A peer in words, for limitations.
pub fn describe(p: &Peer) -> String {
    match p {
        Peer::Name { name, below: false } => name.clone(),
        Peer::Name { name, below: true } => format!("*.{name}"),
        Peer::Net(n) => n.to_string(),
        Peer::Class(c) => c.describe(),
        Peer::Any => "any address".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_ranges() {
        let op = |o: &str, n| PortMatch {
            operator: Some(o.into()),
            port: Some(n),
            ..Default::default()
        };
        assert_eq!(ports(&op("eq", 443)).unwrap(), vec![(443, 443)]);
        assert_eq!(ports(&op("lte", 1023)).unwrap(), vec![(0, 1023)]);
        assert_eq!(ports(&op("gte", 1024)).unwrap(), vec![(1024, 65535)]);
        assert_eq!(ports(&op("neq", 80)).unwrap(), vec![(0, 79), (81, 65535)]);
        assert_eq!(ports(&op("neq", 0)).unwrap(), vec![(1, 65535)]);
        assert!(ports(&op("lt", 1)).is_err());
        let range = PortMatch {
            lower_port: Some(9),
            upper_port: Some(3),
            ..Default::default()
        };
        assert!(ports(&range).is_err());
    }
}
