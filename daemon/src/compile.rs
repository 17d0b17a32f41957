//! Validates a policy against the configuration and compiles it into what
//! the maps hold. Every problem is collected (not just the first) with its
//! location; nothing here touches the kernel.

use std::{collections::BTreeMap, net::IpAddr, path::Path};

use iotfence_common::{
    consts::{
        LEARNED_RULES_PER_ADDR, MAX_DEVICES, MAX_PROFILES, MODE_AUDIT, MODE_ENFORCE, PROTO_ANY,
        PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, RULES_PER_PREFIX,
    },
    PortRule, RuleSet,
};
use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use crate::{
    config::Config,
    diag::{from_yaml_error, Diagnostic, Diags},
    dns::pattern::Pattern,
    policy::{DeviceDoc, OneOrMany, PolicyDoc, PortSpec, ProfileDoc, ProtoSpec, RuleDoc},
};

/// Name of the profile built in for unknown devices.
pub const BUILTIN_DEFAULT: &str = "default";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    /// Index = profile id.
    pub profiles: Vec<CompiledProfile>,
    pub default_profile: u16,
    /// Device ids start at 1; 0 is "unknown device".
    pub devices: Vec<CompiledDevice>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledProfile {
    pub name: String,
    pub mode: u8,
    /// Longest-prefix-ready entries: each prefix carries the rules of every
    /// prefix of the profile that covers it.
    pub egress: Vec<(IpNet, RuleSet)>,
    pub inbound: Vec<(IpNet, RuleSet)>,
    /// Destinations named by domain: allowed once DNS answers name them.
    pub domains: Vec<DomainRule>,
}

/// A domain pattern and what it allows for the addresses it resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    pub pattern: Pattern,
    pub rules: Vec<PortRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledDevice {
    pub id: u32,
    pub name: String,
    pub profile: u16,
    pub mac: Option<[u8; 6]>,
    pub nets: Vec<IpNet>,
}

impl Compiled {
    pub fn device_name(&self, id: u32) -> &str {
        self.devices
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.name.as_str())
            .unwrap_or("unknown")
    }

    /// True when some profile names domains, so DNS answers must be learned.
    pub fn learns(&self) -> bool {
        self.profiles.iter().any(|p| !p.domains.is_empty())
    }

    pub fn profile_name(&self, id: u16) -> &str {
        self.profiles
            .get(id as usize)
            .map(|p| p.name.as_str())
            .unwrap_or("unknown")
    }
}

/// Reads, parses, validates and compiles the policy file of `cfg`.
pub fn load(cfg: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(&cfg.policy).map_err(|e| {
        vec![Diagnostic {
            file: cfg.policy.display().to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read policy: {e}"),
            hint: Some(format!(
                "`policy:` in {} is relative to that file",
                cfg.file.display()
            )),
        }]
    })?;
    compile(&cfg.policy, &text, cfg)
}

pub fn compile(path: &Path, text: &str, cfg: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    let doc: PolicyDoc =
        serde_saphyr::from_str(text).map_err(|e| vec![from_yaml_error(path, &e)])?;
    let mut d = Diags::new(path);
    let mut names: Vec<String> = doc.profiles.keys().cloned().collect();
    let builtin = doc.default_profile.is_none() && !doc.profiles.contains_key(BUILTIN_DEFAULT);
    if builtin {
        names.push(BUILTIN_DEFAULT.into());
    }
    if names.len() > MAX_PROFILES as usize {
        d.file(
            format!(
                "{} profiles; at most {MAX_PROFILES} are supported",
                names.len()
            ),
            None,
        );
    }
    let mut profiles = Vec::new();
    for (name, p) in &doc.profiles {
        profiles.push(profile(&mut d, name, p, cfg));
    }
    if builtin {
        profiles.push(builtin_default(cfg));
    }
    let id_of = |n: &str| names.iter().position(|x| x == n).map(|i| i as u16);
    let default_profile = match &doc.default_profile {
        Some(s) => id_of(&s.value).unwrap_or_else(|| {
            d.on(
                s,
                format!("default_profile `{}` is not defined", s.value),
                Some("define it under `profiles:`"),
            );
            0
        }),
        None => id_of(BUILTIN_DEFAULT).unwrap_or(0),
    };
    let devices = devices(&mut d, &doc.devices, &id_of);
    if !d.list.is_empty() {
        return Err(d.list);
    }
    Ok(Compiled {
        profiles,
        default_profile,
        devices,
    })
}

fn profile(
    d: &mut Diags<'_>,
    name: &str,
    p: &Spanned<ProfileDoc>,
    cfg: &Config,
) -> CompiledProfile {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        d.on(
            p,
            format!("profile name `{name}` may only use letters, digits, '-', '_' and '.'"),
            None,
        );
    }
    let mode = match p.value.mode.as_ref().map(|m| m.value.as_str()) {
        None | Some("enforce") => MODE_ENFORCE,
        Some("audit") => MODE_AUDIT,
        Some(other) => {
            d.on(
                p.value.mode.as_ref().unwrap(),
                format!("unknown mode `{other}`"),
                Some("use enforce or audit"),
            );
            MODE_ENFORCE
        }
    };
    let mut egress: Vec<(IpNet, PortRule)> = Vec::new();
    let mut domains: Vec<DomainRule> = Vec::new();
    for u in &p.value.uses {
        match u.value.as_str() {
            "dhcp" => egress.extend(dhcp_rules(cfg)),
            "dns" => {
                if cfg.resolvers.is_empty() {
                    d.on(
                        u,
                        "`dns` needs resolvers, and the configuration lists none",
                        Some("set `resolvers:` in the configuration file"),
                    );
                }
                egress.extend(dns_rules(cfg));
            }
            other => d.on(
                u,
                format!("unknown building block `{other}`"),
                Some("available: dhcp, dns"),
            ),
        }
    }
    for r in &p.value.egress {
        if r.value.from.is_some() {
            d.on(
                r,
                "egress rules name destinations with `to`, not `from`",
                None,
            );
        }
        match &r.value.to {
            Some(to) => rules(d, r, to, &mut egress, Some((&mut domains, cfg))),
            None => d.on(
                r,
                "egress rule without `to`",
                Some("add `to: [198.51.100.0/24]`"),
            ),
        }
    }
    let mut inbound: Vec<(IpNet, PortRule)> = Vec::new();
    for r in &p.value.inbound {
        if r.value.to.is_some() {
            d.on(
                r,
                "inbound rules name remote sources with `from`, not `to`",
                None,
            );
        }
        match &r.value.from {
            Some(from) => rules(d, r, from, &mut inbound, None),
            None => d.on(
                r,
                "inbound rule without `from`",
                Some("add `from: [192.0.2.0/24]`"),
            ),
        }
    }
    let egress = fold(d, p, name, egress);
    let inbound = fold(d, p, name, inbound);
    CompiledProfile {
        name: name.to_string(),
        mode,
        egress,
        inbound,
        domains,
    }
}

/// The profile for unknown devices when the policy names none: they may get
/// an address and resolve names, nothing more.
fn builtin_default(cfg: &Config) -> CompiledProfile {
    let mut egress = dhcp_rules(cfg);
    egress.extend(dns_rules(cfg));
    let mut d = Diags::new(Path::new("<builtin>"));
    let egress = fold_entries(&mut d, egress).unwrap_or_default();
    CompiledProfile {
        name: BUILTIN_DEFAULT.into(),
        mode: MODE_ENFORCE,
        egress,
        inbound: Vec::new(),
        domains: Vec::new(),
    }
}

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn dhcp_rules(cfg: &Config) -> Vec<(IpNet, PortRule)> {
    let mut v = vec![
        (
            host("255.255.255.255".parse().unwrap()),
            PortRule::new(PROTO_UDP, 67, 67),
        ),
        (
            host("ff02::1:2".parse().unwrap()),
            PortRule::new(PROTO_UDP, 547, 547),
        ),
    ];
    for s in &cfg.dhcp_servers {
        let port = if s.is_ipv4() { 67 } else { 547 };
        v.push((host(*s), PortRule::new(PROTO_UDP, port, port)));
    }
    v
}

fn dns_rules(cfg: &Config) -> Vec<(IpNet, PortRule)> {
    cfg.resolvers
        .iter()
        .flat_map(|r| {
            [
                (host(*r), PortRule::new(PROTO_UDP, 53, 53)),
                (host(*r), PortRule::new(PROTO_TCP, 53, 53)),
            ]
        })
        .collect()
}

/// Expands one rule into (prefix, service) entries, and into domain rules
/// when `domains` is given (egress: destinations may be names).
fn rules(
    d: &mut Diags<'_>,
    r: &Spanned<RuleDoc>,
    addrs: &Spanned<OneOrMany<String>>,
    out: &mut Vec<(IpNet, PortRule)>,
    mut domains: Option<(&mut Vec<DomainRule>, &Config)>,
) {
    let Some(services) = service(d, &r.value) else {
        return;
    };
    for (loc, a) in addrs.value.located(addrs.referenced) {
        if is_name(a) {
            match domains.as_mut() {
                Some((list, cfg)) => domain_rule(d, loc, a, &services, list, cfg),
                None => d.at(
                    loc,
                    format!("`{a}`: inbound sources must be addresses or CIDRs"),
                    Some("a remote source is only known by its address when its packet arrives"),
                ),
            }
            continue;
        }
        let Some(net) = parse_net(d, loc, a) else {
            continue;
        };
        for s in &services {
            out.push((net, *s));
        }
    }
}

/// Looks like a domain or pattern rather than an address.
fn is_name(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('*')
        || (t.parse::<IpNet>().is_err()
            && t.parse::<IpAddr>().is_err()
            && t.contains('.')
            && t.chars().any(|c| c.is_ascii_alphabetic())
            && !t.contains(':')
            && !t.contains('/'))
}

fn domain_rule(
    d: &mut Diags<'_>,
    loc: Location,
    text: &str,
    services: &[PortRule],
    list: &mut Vec<DomainRule>,
    cfg: &Config,
) {
    let pattern = match Pattern::parse(text) {
        Ok(p) => p,
        Err(msg) => {
            d.at(
                loc,
                msg,
                Some("name exact hosts (api.example.com) or `*.example.com` for every name below example.com"),
            );
            return;
        }
    };
    if cfg.resolvers.is_empty() {
        d.at(
            loc,
            format!("`{text}` needs DNS learning, and the configuration lists no resolvers"),
            Some("set `resolvers:` in the configuration file: iotfence learns only from their answers"),
        );
        return;
    }
    let entry = match list.iter_mut().position(|x| x.pattern == pattern) {
        Some(i) => &mut list[i],
        None => {
            list.push(DomainRule {
                pattern,
                rules: Vec::new(),
            });
            list.last_mut().unwrap()
        }
    };
    for s in services {
        if !entry.rules.contains(s) {
            entry.rules.push(*s);
        }
    }
    if entry.rules.len() > LEARNED_RULES_PER_ADDR {
        d.at(
            loc,
            format!(
                "`{text}` carries {} (protocol, port) rules; at most {LEARNED_RULES_PER_ADDR} apply to a learned address",
                entry.rules.len()
            ),
            Some("merge ports into ranges"),
        );
    }
}

fn parse_net(d: &mut Diags<'_>, loc: Location, text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            d.at(
                loc,
                format!("`{text}` has host bits set"),
                Some(&format!("did you mean {}?", net.trunc())),
            );
            return None;
        }
        return Some(net);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(host(ip));
    }
    let hint = "write an address (198.51.100.7) or a CIDR (198.51.100.0/24)";
    d.at(
        loc,
        format!("`{text}` is not an IP address or CIDR"),
        Some(hint),
    );
    None
}

/// Protocol and port (or ICMP type) ranges of one rule.
fn service(d: &mut Diags<'_>, r: &RuleDoc) -> Option<Vec<PortRule>> {
    let proto = match &r.proto.value {
        ProtoSpec::Name(n) => match n.to_ascii_lowercase().as_str() {
            "tcp" => PROTO_TCP,
            "udp" => PROTO_UDP,
            "icmp" => PROTO_ICMP,
            "icmpv6" | "ipv6-icmp" => PROTO_ICMPV6,
            "any" => PROTO_ANY,
            _ => {
                d.on(
                    &r.proto,
                    format!("unknown protocol `{n}`"),
                    Some("use tcp, udp, icmp, icmpv6, any or a protocol number"),
                );
                return None;
            }
        },
        ProtoSpec::Number(n) if *n < 255 => *n as u8,
        ProtoSpec::Number(n) => {
            d.on(
                &r.proto,
                format!("protocol number {n} is out of range"),
                Some("0 to 254"),
            );
            return None;
        }
    };
    let has_ports = matches!(proto, PROTO_TCP | PROTO_UDP);
    let is_icmp = matches!(proto, PROTO_ICMP | PROTO_ICMPV6);
    if let Some(p) = &r.ports {
        if !has_ports {
            let hint = if is_icmp {
                "use `types:` for ICMP message types"
            } else {
                "only tcp and udp have ports"
            };
            d.on(p, "this protocol has no ports", Some(hint));
            return None;
        }
    }
    if let Some(t) = &r.types {
        if !is_icmp {
            d.on(t, "`types:` is for icmp and icmpv6 rules", None);
            return None;
        }
    }
    let (list, max) = match (&r.ports, &r.types) {
        (Some(p), _) => (Some(p), 65_535),
        (None, Some(t)) => (Some(t), 255),
        (None, None) => (None, 65_535),
    };
    let Some(list) = list else {
        return Some(vec![PortRule::new(proto, 0, 65_535)]);
    };
    let mut out = Vec::new();
    for (loc, spec) in list.value.located(list.referenced) {
        match range(spec, max) {
            Ok((lo, hi)) => out.push(PortRule::new(proto, lo, hi)),
            Err(msg) => {
                d.at(
                    loc,
                    msg,
                    Some(&format!(
                        "ports are 0 to {max}; ranges are written \"1000-2000\""
                    )),
                );
                return None;
            }
        }
    }
    if out.is_empty() {
        d.on(
            list,
            "empty list matches nothing",
            Some("omit the key to allow every port"),
        );
        return None;
    }
    Some(out)
}

fn range(spec: &PortSpec, max: i64) -> Result<(u16, u16), String> {
    let num = |s: &str| -> Result<i64, String> {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is not a number"))
    };
    let (lo, hi) = match spec {
        PortSpec::Number(n) => (*n, *n),
        PortSpec::Range(s) => match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(s)?;
                (n, n)
            }
        },
    };
    if lo == hi && !(0..=max).contains(&lo) {
        return Err(format!("{lo} is out of range (0 to {max})"));
    }
    if lo < 0 || hi > max || lo > hi {
        return Err(format!(
            "{lo}-{hi} is not a valid range (0 to {max}, low to high)"
        ));
    }
    Ok((lo as u16, hi as u16))
}

/// Groups rules by prefix and folds each covering prefix's rules into the
/// longer prefixes, because an LPM lookup returns only the longest match.
fn fold(
    d: &mut Diags<'_>,
    p: &Spanned<ProfileDoc>,
    name: &str,
    entries: Vec<(IpNet, PortRule)>,
) -> Vec<(IpNet, RuleSet)> {
    let mut inner = Diags::new(Path::new(""));
    match fold_entries(&mut inner, entries) {
        Some(v) => v,
        None => {
            for m in inner.list {
                d.on(
                    p,
                    format!("profile `{name}`: {}", m.message),
                    m.hint.as_deref(),
                );
            }
            Vec::new()
        }
    }
}

fn fold_entries(
    d: &mut Diags<'_>,
    entries: Vec<(IpNet, PortRule)>,
) -> Option<Vec<(IpNet, RuleSet)>> {
    let mut by_prefix: BTreeMap<IpNet, Vec<PortRule>> = BTreeMap::new();
    for (net, rule) in entries {
        let v = by_prefix.entry(net).or_default();
        if !v.contains(&rule) {
            v.push(rule);
        }
    }
    let mut out = Vec::new();
    for net in by_prefix.keys() {
        let mut rules: Vec<PortRule> = Vec::new();
        for (other, r) in &by_prefix {
            if other.contains(net) {
                for rule in r {
                    if !rules.contains(rule) {
                        rules.push(*rule);
                    }
                }
            }
        }
        if rules.len() > RULES_PER_PREFIX {
            d.file(
                format!("{net} is reached by {} (protocol, port) rules; at most {RULES_PER_PREFIX} apply to one destination", rules.len()),
                Some("merge ports into ranges"),
            );
            return None;
        }
        let mut set = RuleSet {
            count: rules.len() as u32,
            ..Default::default()
        };
        set.rules[..rules.len()].copy_from_slice(&rules);
        out.push((*net, set));
    }
    Some(out)
}

fn devices(
    d: &mut Diags<'_>,
    docs: &[Spanned<DeviceDoc>],
    id_of: &dyn Fn(&str) -> Option<u16>,
) -> Vec<CompiledDevice> {
    let mut out: Vec<CompiledDevice> = Vec::new();
    if docs.len() >= MAX_DEVICES as usize {
        d.file(
            format!(
                "{} devices; at most {} are supported",
                docs.len(),
                MAX_DEVICES - 1
            ),
            None,
        );
        return out;
    }
    for (i, dev) in docs.iter().enumerate() {
        let v = &dev.value;
        if out.iter().any(|o| o.name == v.name.value) {
            d.on(
                &v.name,
                format!("device `{}` is defined twice", v.name.value),
                None,
            );
        }
        let profile = id_of(&v.profile.value).unwrap_or_else(|| {
            d.on(
                &v.profile,
                format!("profile `{}` is not defined", v.profile.value),
                Some("define it under `profiles:`"),
            );
            0
        });
        let mac = v.mac.as_ref().and_then(|m| match parse_mac(&m.value) {
            Some(mac) if mac[0] & 1 == 1 => {
                d.on(
                    m,
                    format!("`{}` is a multicast MAC address", m.value),
                    Some("a device sends from a unicast address"),
                );
                None
            }
            Some(mac) => {
                if let Some(o) = out.iter().find(|o| o.mac == Some(mac)) {
                    d.on(
                        m,
                        format!("MAC {} is also device `{}`", m.value, o.name),
                        None,
                    );
                }
                Some(mac)
            }
            None => {
                d.on(
                    m,
                    format!("`{}` is not a MAC address", m.value),
                    Some("write it as 02:00:5e:10:00:01"),
                );
                None
            }
        });
        let mut nets = Vec::new();
        for (loc, a) in v.ip.iter().flat_map(|l| l.value.located(l.referenced)) {
            if let Some(net) = parse_net(d, loc, a) {
                if let Some(o) = out.iter().find(|o| o.nets.contains(&net)) {
                    d.at(loc, format!("{net} is also device `{}`", o.name), None);
                }
                nets.push(net);
            }
        }
        if v.mac.is_none() && v.ip.is_none() {
            d.on(
                dev,
                format!("device `{}` has neither `mac` nor `ip`", v.name.value),
                Some("iotfence recognizes devices by MAC, then by source address"),
            );
        }
        out.push(CompiledDevice {
            id: i as u32 + 1,
            name: v.name.value.clone(),
            profile,
            mac,
            nets,
        });
    }
    out
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}
