//! `mud export`: a profile of a policy as a MUD file (RFC 8520).
//!
//! Each egress rule becomes, per destination and port range, a
//! from-device ACE that opens the flow and a to-device ACE for its answers
//! (what a stateless MUD enforcement point needs); each inbound rule a
//! to-device ACE that opens the flow and a from-device one for the
//! device's answers. TCP ACEs carry `direction-initiated`. `mud import`
//! reads this layout back to the same rules. Names become
//! `ietf-acldns:dst-dnsname`, site variables MUD classes (see `vars`), the
//! `dhcp`, `dns` and `ntp` blocks DHCP's addresses and the registered DNS
//! and NTP controllers.

use std::collections::BTreeMap;

use iotfence_common::{consts::PROTO_ANY, PortRule};
use ipnet::IpNet;

use super::{
    entry::{ICMP, ICMPV6, TCP, UDP},
    import::EXTENSION,
    model::{
        AccessLists, Ace, Aces, Acl, AclRef, Actions, Empty, IcmpMatch, IpMatch, L4Match, Matches,
        Mud, MudFile, MudMatch, Policy, PortMatch,
    },
    vars::{self, Class, DNS_URN, NTP_URN},
};
use crate::{
    diag::{Diagnostic, Diags},
    policy::{
        compile,
        doc::{ProfileDoc, RuleDoc},
        pattern::Pattern,
        sources::Source,
    },
};

pub struct Options<'a> {
    pub mud_url: Option<&'a str>,
    /// RFC 3339 date and time.
    pub last_update: String,
}

pub struct Exported {
    pub file: MudFile,
    /// What the MUD file cannot say, for stderr.
    pub limitations: Vec<String>,
}

/// The MUD URL a profile was imported from (its `source:`), if any.
fn imported_url(p: &ProfileDoc) -> Option<&str> {
    let rest = p.source.as_deref()?.strip_prefix("MUD file ")?;
    rest.split_whitespace().next()
}

#[derive(Clone, Debug)]
enum Peer {
    Name { name: String, below: bool },
    Net(IpNet),
    Class(Class),
    Any,
}

/// One ACE before it is named: the far peer, what it matches and whether
/// it opens flows (`opens`) or answers them, in policy `from` (device) or
/// not.
#[derive(Clone)]
struct Spec {
    name: String,
    from: bool,
    peer: Peer,
    proto: Option<u8>,
    src: Option<(u16, u16)>,
    dst: Option<(u16, u16)>,
    icmp_type: Option<u8>,
    /// TCP only: the direction that opens the connection (`true`: the device).
    device_opens: bool,
    v6: bool,
}

pub fn export(
    sources: &[std::sync::Arc<Source>],
    profile: &str,
    opts: &Options<'_>,
) -> Result<Exported, Vec<Diagnostic>> {
    let found = sources
        .iter()
        .find_map(|s| s.doc.profiles.get(profile).map(|p| (s, p)));
    let Some((src, p)) = found else {
        let names: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.doc.profiles.keys().map(String::as_str))
            .collect();
        let path = sources.first().map(|s| s.path.clone()).unwrap_or_default();
        return Err(vec![Diagnostic::file_error(
            &path,
            format!("no profile `{profile}` in this policy"),
            Some(format!("profiles: {}", names.join(", "))),
        )]);
    };
    let p = &p.value;
    let mut limits = Vec::new();
    let mud_url = match (opts.mud_url, imported_url(p)) {
        (Some(u), _) => u.to_string(),
        (None, Some(u)) => u.to_string(),
        (None, None) => {
            let u = format!("https://mud.example.com/iotfence/{profile}.json");
            limits.push(format!("mud-url: {u} is a placeholder; pass --mud-url with the address the file will be served from"));
            u
        }
    };
    let descriptions: BTreeMap<&str, Option<&str>> = sources
        .iter()
        .flat_map(|s| s.doc.requires.iter())
        .map(|(k, r)| (k.as_str(), r.value.description.as_deref()))
        .collect();
    if p.mode.as_ref().is_some_and(|m| m.value == "audit") {
        limits.push("mode: audit has no MUD equivalent; a MUD manager enforces the file".into());
    }
    if !p.limitations.is_empty() {
        limits.push(format!(
            "the profile's {} limitations are not part of the MUD file (it has no place for them)",
            p.limitations.len()
        ));
    }

    let mut d = Diags::new(&src.path);
    let mut specs = Vec::new();
    for u in &p.uses {
        block(&u.value, &mut specs);
    }
    for (i, r) in p.egress.iter().enumerate() {
        rule(
            &mut d,
            &r.value,
            true,
            i,
            &descriptions,
            &mud_url,
            &mut specs,
            &mut limits,
        );
    }
    for (i, r) in p.inbound.iter().enumerate() {
        rule(
            &mut d,
            &r.value,
            false,
            i,
            &descriptions,
            &mud_url,
            &mut specs,
            &mut limits,
        );
    }
    if d.has_errors() {
        return Err(d.list);
    }
    let wildcard = specs
        .iter()
        .any(|s| matches!(s.peer, Peer::Name { below: true, .. }));
    Ok(Exported {
        file: assemble(profile, p, &mud_url, &opts.last_update, specs, wildcard),
        limitations: limits,
    })
}

/// The ACEs of a built-in block.
fn block(name: &str, out: &mut Vec<Spec>) {
    let spec = |name: &str, from: bool, v6: bool, peer: Peer, proto: u8, src, dst| Spec {
        name: name.into(),
        from,
        peer,
        proto: Some(proto),
        src,
        dst,
        icmp_type: None,
        device_opens: true,
        v6,
    };
    let net = |s: &str| Peer::Net(s.parse().expect("a valid network"));
    match name {
        "dhcp" => {
            out.push(spec(
                "dhcp-frdev",
                true,
                false,
                net("255.255.255.255/32"),
                UDP,
                None,
                Some((67, 67)),
            ));
            out.push(spec(
                "dhcp-todev",
                false,
                false,
                Peer::Any,
                UDP,
                Some((67, 67)),
                Some((68, 68)),
            ));
            out.push(spec(
                "dhcp-frdev",
                true,
                true,
                net("ff02::1:2/128"),
                UDP,
                None,
                Some((547, 547)),
            ));
            out.push(spec(
                "dhcp-todev",
                false,
                true,
                Peer::Any,
                UDP,
                Some((547, 547)),
                Some((546, 546)),
            ));
        }
        "dns" | "ntp" => {
            let (urn, port, protos): (&str, u16, &[u8]) = if name == "dns" {
                (DNS_URN, 53, &[UDP, TCP])
            } else {
                (NTP_URN, 123, &[UDP])
            };
            for v6 in [false, true] {
                for &proto in protos {
                    let peer = Peer::Class(Class::Controller(urn.into()));
                    let tag = if proto == TCP { "tcp-" } else { "" };
                    out.push(spec(
                        &format!("{name}-{tag}frdev"),
                        true,
                        v6,
                        peer.clone(),
                        proto,
                        None,
                        Some((port, port)),
                    ));
                    out.push(spec(
                        &format!("{name}-{tag}todev"),
                        false,
                        v6,
                        peer,
                        proto,
                        Some((port, port)),
                        None,
                    ));
                }
            }
        }
        // The compiler refuses other names; nothing to write.
        _ => {}
    }
}

/// The name the ACEs of rule `i` take, as stem and suffix: the MUD
/// section's when it was imported from one ACE (`cl0` `-frdev`), else
/// made up (`eg3` `-frdev`, `in0` `-todev`).
fn base_name(r: &RuleDoc, egress: bool, i: usize) -> (String, &'static str) {
    if let Some(name) = r
        .section
        .as_deref()
        .and_then(|s| s.strip_prefix("MUD ACE "))
    {
        if !name.contains(", ") && !name.is_empty() {
            for suffix in ["-frdev", "-todev"] {
                if let Some(stem) = name.strip_suffix(suffix) {
                    return (stem.to_string(), suffix);
                }
            }
            return (name.to_string(), "");
        }
    }
    if egress {
        (format!("eg{i}"), "-frdev")
    } else {
        (format!("in{i}"), "-todev")
    }
}

/// The name of the ACE answering `name`.
fn answer_name(name: &str) -> String {
    if let Some(b) = name.strip_suffix("-frdev") {
        format!("{b}-todev")
    } else if let Some(b) = name.strip_suffix("-todev") {
        format!("{b}-frdev")
    } else {
        format!("{name}-answers")
    }
}

#[allow(clippy::too_many_arguments)]
fn rule(
    d: &mut Diags<'_>,
    r: &RuleDoc,
    egress: bool,
    i: usize,
    descriptions: &BTreeMap<&str, Option<&str>>,
    mud_url: &str,
    out: &mut Vec<Spec>,
    limits: &mut Vec<String>,
) {
    let Some(services) = compile::service(d, r) else {
        return;
    };
    let list = if egress { &r.to } else { &r.from };
    let Some(list) = list else {
        d.file(
            if egress {
                "egress rule without `to`"
            } else {
                "inbound rule without `from`"
            },
            None,
        );
        return;
    };
    let base = base_name(r, egress, i);
    // One counter per family, so an ACE's IPv4 and IPv6 twins share a name.
    let mut n = [0usize; 2];
    for (loc, text) in list.value.located(list.referenced) {
        let text = text.trim();
        let peer = if let Some(var) = text.strip_prefix('$') {
            let desc = descriptions.get(var).copied().flatten();
            Peer::Class(vars::from_var(var, desc, mud_url))
        } else if let Ok(net) = text.parse::<IpNet>() {
            Peer::Net(net.trunc())
        } else if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            Peer::Net(IpNet::from(ip))
        } else {
            match Pattern::parse(text) {
                Ok(Pattern::Exact(name)) => Peer::Name { name, below: false },
                Ok(Pattern::Below(name)) => {
                    limits.push(format!("`{text}` is written as dst-dnsname {name} with iotfence's dnsname-wildcard extension: a MUD manager without it allows {name} itself instead of the names below it"));
                    Peer::Name { name, below: true }
                }
                Err(e) => {
                    d.at(loc, e, None);
                    continue;
                }
            }
        };
        for s in &services {
            for spec in specs(&peer, s, egress) {
                let k = &mut n[spec.v6 as usize];
                let (stem, suffix) = &base;
                let name = if *k == 0 {
                    format!("{stem}{suffix}")
                } else {
                    format!("{stem}-{k}{suffix}")
                };
                *k += 1;
                push_pair(out, spec, name, egress, limits);
            }
        }
    }
}

/// The ACEs for one peer and service: per family, per ICMP type.
fn specs(peer: &Peer, s: &PortRule, egress: bool) -> Vec<Spec> {
    let families: &[bool] = match (peer, s.proto) {
        (Peer::Net(n), _) => {
            if n.addr().is_ipv6() {
                &[true]
            } else {
                &[false]
            }
        }
        (_, ICMP) => &[false],
        (_, ICMPV6) => &[true],
        _ => &[false, true],
    };
    let proto = (s.proto != PROTO_ANY).then_some(s.proto);
    let icmp = matches!(s.proto, ICMP | ICMPV6);
    // No `ports:`/`types:` compiles to 0-65535, for ICMP too.
    let full = s.lo == 0 && s.hi >= if icmp { 255 } else { u16::MAX };
    let mut out = Vec::new();
    for &v6 in families {
        let base = Spec {
            name: String::new(),
            from: egress,
            peer: peer.clone(),
            proto,
            src: None,
            dst: None,
            icmp_type: None,
            device_opens: egress,
            v6,
        };
        if icmp && !full {
            for t in s.lo..=s.hi.min(255) {
                out.push(Spec {
                    icmp_type: Some(t as u8),
                    ..base.clone()
                });
            }
        } else if matches!(s.proto, TCP | UDP) && !full {
            out.push(Spec {
                dst: Some((s.lo, s.hi)),
                ..base
            });
        } else {
            out.push(base);
        }
    }
    out
}

/// The ACE that opens, and the one for its answers where MUD can tell it
/// apart (ports, TCP's direction, ICMP's echo reply).
fn push_pair(
    out: &mut Vec<Spec>,
    mut open: Spec,
    name: String,
    egress: bool,
    limits: &mut Vec<String>,
) {
    open.name = name;
    let mut answer = Spec {
        name: answer_name(&open.name),
        from: !open.from,
        src: open.dst,
        dst: open.src,
        icmp_type: None,
        ..open.clone()
    };
    let echo = if open.v6 { (128, 129) } else { (8, 0) };
    let keep = match (open.proto, open.icmp_type) {
        (Some(TCP), _) => true,
        (Some(ICMP) | Some(ICMPV6), Some(t)) if t == echo.0 => {
            answer.icmp_type = Some(echo.1);
            true
        }
        (Some(ICMP) | Some(ICMPV6), Some(_)) => false,
        // Ports tell the answers apart; without them a from-device ACE
        // would read as the device opening flows to the peer.
        _ => egress || open.dst.is_some(),
    };
    if !keep && !egress && open.icmp_type.is_none() {
        limits.push(format!("inbound ACE {}: written without a from-device ACE for the device's answers (without ports it would read as the device opening flows); a stateless MUD enforcement point drops them", open.name));
    }
    out.push(open);
    if keep {
        out.push(answer);
    }
}

fn port(p: (u16, u16)) -> PortMatch {
    if p.0 == p.1 {
        PortMatch {
            operator: Some("eq".into()),
            port: Some(p.0),
            ..Default::default()
        }
    } else {
        PortMatch {
            lower_port: Some(p.0),
            upper_port: Some(p.1),
            ..Default::default()
        }
    }
}

fn ace(s: &Spec) -> Ace {
    let mut ip = IpMatch {
        protocol: s.proto,
        ..Default::default()
    };
    let mut mud = None;
    match &s.peer {
        Peer::Name { name, below } => {
            if s.from {
                ip.dst_dnsname = Some(name.clone());
            } else {
                ip.src_dnsname = Some(name.clone());
            }
            ip.dnsname_wildcard = *below;
        }
        Peer::Net(n) => {
            let n = Some(n.to_string());
            match (s.from, s.v6) {
                (true, false) => ip.destination_ipv4_network = n,
                (false, false) => ip.source_ipv4_network = n,
                (true, true) => ip.destination_ipv6_network = n,
                (false, true) => ip.source_ipv6_network = n,
            }
        }
        Peer::Class(c) => {
            let mut m = MudMatch::default();
            match c {
                Class::LocalNetworks => m.local_networks = Some(Empty),
                Class::SameManufacturer => m.same_manufacturer = Some(Empty),
                Class::Manufacturer(x) => m.manufacturer = Some(x.clone()),
                Class::Model(x) => m.model = Some(x.clone()),
                Class::Controller(x) => m.controller = Some(x.clone()),
                Class::MyController => m.my_controller = Some(Empty),
            }
            mud = Some(m);
        }
        Peer::Any => {}
    }
    let l4 = (s.src.is_some() || s.dst.is_some() || s.proto == Some(TCP)).then(|| L4Match {
        source_port: s.src.map(port),
        destination_port: s.dst.map(port),
        direction_initiated: (s.proto == Some(TCP)).then(|| {
            if s.device_opens {
                "from-device"
            } else {
                "to-device"
            }
            .to_string()
        }),
        ..Default::default()
    });
    let empty_ip = ip.protocol.is_none()
        && ip.dst_dnsname.is_none()
        && ip.src_dnsname.is_none()
        && ip.destination_ipv4_network.is_none()
        && ip.source_ipv4_network.is_none()
        && ip.destination_ipv6_network.is_none()
        && ip.source_ipv6_network.is_none();
    let ip = (!empty_ip).then_some(ip);
    let mut matches = Matches {
        mud,
        ..Default::default()
    };
    if s.v6 {
        matches.ipv6 = ip;
    } else {
        matches.ipv4 = ip;
    }
    match s.proto {
        Some(TCP) => matches.tcp = l4,
        Some(UDP) => matches.udp = l4,
        _ => {}
    }
    if let Some(t) = s.icmp_type {
        matches.icmp = Some(IcmpMatch {
            icmp_type: Some(t),
            ..Default::default()
        });
    }
    Ace {
        name: s.name.clone(),
        matches,
        actions: Actions {
            forwarding: Some("accept".into()),
            ..Default::default()
        },
        rest: Default::default(),
    }
}

fn assemble(
    profile: &str,
    p: &ProfileDoc,
    mud_url: &str,
    last_update: &str,
    specs: Vec<Spec>,
    wildcard: bool,
) -> MudFile {
    // ACLs in a fixed order: v4 from, v6 from, v4 to, v6 to.
    let keys = [
        (true, false, "v4fr"),
        (true, true, "v6fr"),
        (false, false, "v4to"),
        (false, true, "v6to"),
    ];
    let mut acls = Vec::new();
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for (dir_from, v6, suffix) in keys {
        let mut aces: Vec<Ace> = Vec::new();
        for s in specs.iter().filter(|s| s.from == dir_from && s.v6 == v6) {
            let mut a = ace(s);
            // ACE names are unique within their ACL.
            let mut k = 2;
            while aces.iter().any(|x| x.name == a.name) {
                a.name = format!("{}-{k}", s.name);
                k += 1;
            }
            aces.push(a);
        }
        if aces.is_empty() {
            continue;
        }
        let name = format!("{profile}-{suffix}");
        if dir_from { &mut from } else { &mut to }.push(AclRef { name: name.clone() });
        acls.push(Acl {
            name,
            acl_type: Some(if v6 { "ipv6-acl-type" } else { "ipv4-acl-type" }.into()),
            aces: Aces { ace: aces },
        });
    }
    let policy = |list: Vec<AclRef>| Policy {
        access_lists: AccessLists { access_list: list },
    };
    MudFile {
        mud: Mud {
            mud_version: 1,
            mud_url: mud_url.into(),
            last_update: last_update.into(),
            mud_signature: None,
            cache_validity: Some(48),
            is_supported: true,
            systeminfo: Some(p.description.clone().unwrap_or_else(|| profile.to_string())),
            mfg_name: None,
            model_name: None,
            firmware_rev: None,
            software_rev: None,
            documentation: None,
            extensions: if wildcard {
                vec![EXTENSION.into()]
            } else {
                Vec::new()
            },
            from_device_policy: Some(policy(from)),
            to_device_policy: Some(policy(to)),
            rest: Default::default(),
        },
        acls: Some(super::model::Acls { acl: acls }),
        draft_acls: None,
        rest: Default::default(),
    }
}
