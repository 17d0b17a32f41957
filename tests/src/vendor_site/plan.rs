//! The probes of each device, derived from the compiled site policy:
//! what every rule allows must go through, a port or name it does not
//! must not.

use std::{collections::BTreeMap, net::IpAddr};

use iotfence::{
    policy::compile::{Compiled, CompiledProfile},
    policy::pattern::Pattern,
};
use iotfence_common::{
    consts::{PROTO_ANY, PROTO_TCP, PROTO_UDP},
    PortRule,
};

use super::*;
use crate::lab::{SERVER_A, SERVER_A6, SERVER_B};

/// One packet exchange from a device: a TCP connection that gets the
/// server's greeting, or a UDP datagram that comes back. `resolve` is looked
/// up first (and must answer `addr`), so DNS learning opens the way.
#[derive(Clone, Debug)]
pub struct Probe {
    pub what: String,
    pub resolve: Option<String>,
    pub addr: IpAddr,
    pub proto: u8,
    pub port: u16,
}

pub struct Plan {
    pub profile: String,
    pub device: &'static str,
    pub id: u32,
    pub audit: bool,
    pub required: Vec<Probe>,
    pub forbidden: Vec<Probe>,
}

/// The name a device looks up for a pattern.
pub fn concrete(p: &Pattern) -> String {
    match p {
        Pattern::Exact(n) => n.clone(),
        Pattern::Below(d) => format!("iotf-test.{d}"),
    }
}

pub fn allows(r: &PortRule, proto: u8, port: u16) -> bool {
    (r.proto == proto || r.proto == PROTO_ANY) && r.lo <= port && port <= r.hi
}

pub fn rules_of(set: &iotfence_common::RuleSet) -> &[PortRule] {
    &set.rules[..set.count as usize]
}

/// Everything `p` allows to `addr` once `name` (if any) resolved to it:
/// every matching pattern's rules, and the static rules covering it.
pub fn allowed(p: &CompiledProfile, name: Option<&str>, addr: IpAddr) -> Vec<PortRule> {
    let mut v: Vec<PortRule> = name
        .into_iter()
        .flat_map(|n| p.domains.iter().filter(move |d| d.pattern.matches(n)))
        .flat_map(|d| d.rules.iter().copied())
        .collect();
    for (net, set) in &p.egress {
        if covers(net.network(), net.prefix_len(), addr) {
            v.extend_from_slice(rules_of(set));
        }
    }
    v
}

/// Ports probed for a rule: both ends of a range (port 0 stands for 1).
pub fn ports(r: &PortRule) -> Vec<u16> {
    let mut v = vec![r.lo.max(1)];
    if r.hi > v[0] {
        v.push(r.hi);
    }
    v
}

pub fn proto_name(p: u8) -> &'static str {
    iotfence_common::consts::protocol_name(p).unwrap_or("?")
}

/// The probes a rule yields (TCP and UDP; `any` is probed as TCP), or why it
/// yields none.
pub fn rule_probes(
    r: &PortRule,
    what: &str,
    resolve: Option<&str>,
    addr: IpAddr,
) -> Result<Vec<Probe>, String> {
    let proto = match r.proto {
        PROTO_TCP | PROTO_UDP => r.proto,
        PROTO_ANY => PROTO_TCP,
        other => {
            return Err(format!(
                "{what} protocol {other}: only TCP and UDP are probed"
            ))
        }
    };
    Ok(ports(r)
        .into_iter()
        .map(|port| Probe {
            what: format!("{what} {}/{port}", proto_name(proto)),
            resolve: resolve.map(str::to_string),
            addr,
            proto,
            port,
        })
        .collect())
}

pub fn plan(
    compiled: &Compiled,
    profile: &str,
    device: &'static str,
    names: &BTreeMap<String, IpAddr>,
    skipped: &mut Vec<String>,
) -> Plan {
    let dev = compiled
        .devices
        .iter()
        .find(|d| d.name == device)
        .unwrap_or_else(|| panic!("device {device} not compiled"));
    let p = &compiled.profiles[dev.profile as usize];
    assert_eq!(p.name, profile, "device {device} has the wrong profile");
    let mut required = Vec::new();
    // A destination of the profile, for the port it does not allow.
    let mut some_destination: Option<(Option<String>, IpAddr)> = None;
    for d in &p.domains {
        let name = concrete(&d.pattern);
        let addr = names[&name];
        let what = format!("{name} ({:?})", d.pattern);
        for r in &d.rules {
            match rule_probes(r, &what, Some(&name), addr) {
                Ok(v) => required.extend(v),
                Err(why) => skipped.push(format!("{profile}: {why}")),
            }
        }
        some_destination.get_or_insert((Some(name), addr));
    }
    for (net, set) in &p.egress {
        let addr = representative(net.network(), net.prefix_len());
        let what = format!("{net} (at {addr})");
        match place(addr) {
            Place::Infrastructure => continue,
            Place::Skip(why) => {
                skipped.push(format!("{profile}: {what}: {why}"));
                continue;
            }
            Place::Lab => {}
        }
        for r in rules_of(set) {
            match rule_probes(r, &what, None, addr) {
                Ok(v) => required.extend(v),
                Err(why) => skipped.push(format!("{profile}: {why}")),
            }
        }
        some_destination.get_or_insert((None, addr));
    }

    let mut forbidden = Vec::new();
    // (a) A name outside the profile: it resolves, and its address stays shut.
    forbidden.push(Probe {
        what: format!("{FORBIDDEN_NAME} tcp/443 (name not in the profile)"),
        resolve: Some(FORBIDDEN_NAME.into()),
        addr: names[FORBIDDEN_NAME],
        proto: PROTO_TCP,
        port: 443,
    });
    // (b) An allowed destination on a port none of its rules names.
    match &some_destination {
        Some((name, addr)) => {
            let rules = allowed(p, name.as_deref(), *addr);
            let (proto, port) = OTHER_PORTS
                .into_iter()
                .find(|(proto, port)| !rules.iter().any(|r| allows(r, *proto, *port)))
                .unwrap_or_else(|| panic!("{profile}: every probe port is allowed to {addr}"));
            let dest = name.clone().unwrap_or(addr.to_string());
            forbidden.push(Probe {
                what: format!(
                    "{dest} {}/{port} (port not in the profile)",
                    proto_name(proto)
                ),
                resolve: name.clone(),
                addr: *addr,
                proto,
                port,
            });
        }
        None => skipped.push(format!(
            "{profile}: no destination the lab serves, so no forbidden-port probe"
        )),
    }
    // (c) A documentation address the profile does not name.
    let addr = [SERVER_A, SERVER_B, SERVER_A6]
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .find(|a| {
            !allowed(p, None, *a)
                .iter()
                .any(|r| allows(r, PROTO_TCP, 443))
        })
        .unwrap_or_else(|| panic!("{profile}: allows tcp/443 to every lab server"));
    forbidden.push(Probe {
        what: format!("{addr} tcp/443 (address not in the profile)"),
        resolve: None,
        addr,
        proto: PROTO_TCP,
        port: 443,
    });
    Plan {
        profile: profile.to_string(),
        device,
        id: dev.id,
        audit: p.mode == iotfence_common::Mode::Audit as u8,
        required,
        forbidden,
    }
}
