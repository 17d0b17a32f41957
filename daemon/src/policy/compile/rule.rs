//! One profile's rules as written, expanded into a draft: mode, building
//! blocks, egress and inbound rules, and their services (protocol, ports,
//! ICMP types).

use iotfence_common::{
    consts::{PROTO_ANY, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    Mode, PortRule,
};
use serde_saphyr::Spanned;

use crate::{
    config::Config,
    diag::Diags,
    policy::doc::{OneOrMany, PortSpec, ProfileDoc, ProtoSpec, RuleDoc},
};

use super::addr::check_family;
use super::addr::destination;
use super::addr::is_name;
use super::addr::parse_net;
use super::blocks::use_blocks;
use super::vars::expand;
use super::vars::Vars;
use super::{origin, Draft};

pub(super) fn parse_mode(d: &mut Diags<'_>, m: &Spanned<String>) -> u8 {
    match Mode::from_name(&m.value) {
        Some(mode) => mode as u8,
        None => {
            d.on(
                m,
                format!("unknown mode `{}`", m.value),
                Some("use enforce or audit"),
            );
            Mode::Enforce as u8
        }
    }
}

pub(super) fn draft(
    d: &mut Diags<'_>,
    name: &str,
    p: &Spanned<ProfileDoc>,
    cfg: &Config,
    vars: &Vars<'_>,
) -> Draft {
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
    let mut out = Draft {
        mode: p
            .value
            .mode
            .as_ref()
            .map(|m| parse_mode(d, m))
            .unwrap_or(Mode::Enforce as u8),
        ..Default::default()
    };
    use_blocks(d, p, cfg, vars, &mut out);
    for r in &p.value.egress {
        let since = origin::mark(&out);
        egress_rule(d, r, cfg, vars, &mut out);
        let (section, comment) = (r.value.section.as_ref(), r.value.comment.as_ref());
        origin::record(
            d,
            &mut out,
            since,
            "egress",
            Some(r.referenced),
            section,
            comment,
        );
    }
    for r in &p.value.inbound {
        let Some((from, services)) = rule_parts(d, r, Direction::Inbound) else {
            continue;
        };
        let since = origin::mark(&out);
        for (loc, text) in expand(d, from, vars) {
            if is_name(text) {
                d.at(
                    loc,
                    format!("`{text}`: inbound sources must be addresses or CIDRs"),
                    Some("a remote source is only known by its address when its packet arrives"),
                );
            } else if let Some(net) = parse_net(d, loc, text) {
                check_family(d, loc, &net, &services);
                out.inbound.extend(services.iter().map(|s| (net, *s)));
            }
        }
        let (section, comment) = (r.value.section.as_ref(), r.value.comment.as_ref());
        origin::record(
            d,
            &mut out,
            since,
            "inbound",
            Some(r.referenced),
            section,
            comment,
        );
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Egress,
    Inbound,
}

/// A rule's address list (`to` for egress, `from` for inbound) and its
/// services; reports a rule that uses the other direction's key or lacks
/// its own.
pub(super) fn rule_parts<'r>(
    d: &mut Diags<'_>,
    r: &'r Spanned<RuleDoc>,
    dir: Direction,
) -> Option<(&'r Spanned<OneOrMany<String>>, Vec<PortRule>)> {
    let (own, other, wrong, missing, hint) = match dir {
        Direction::Egress => (
            &r.value.to,
            &r.value.from,
            "egress rules name destinations with `to`, not `from`",
            "egress rule without `to`",
            "add `to: [198.51.100.0/24]`",
        ),
        Direction::Inbound => (
            &r.value.from,
            &r.value.to,
            "inbound rules name remote sources with `from`, not `to`",
            "inbound rule without `from`",
            "add `from: [192.0.2.0/24]`",
        ),
    };
    if other.is_some() {
        d.on(r, wrong, None);
    }
    let Some(list) = own else {
        d.on(r, missing, Some(hint));
        return None;
    };
    Some((list, service(d, &r.value)?))
}

pub(super) fn egress_rule(
    d: &mut Diags<'_>,
    r: &Spanned<RuleDoc>,
    cfg: &Config,
    vars: &Vars<'_>,
    out: &mut Draft,
) {
    let Some((to, services)) = rule_parts(d, r, Direction::Egress) else {
        return;
    };
    for (loc, text) in expand(d, to, vars) {
        destination(d, loc, text, &services, out, cfg);
    }
}

/// Protocol and port (or ICMP type) ranges of one rule.
pub fn service(d: &mut Diags<'_>, r: &RuleDoc) -> Option<Vec<PortRule>> {
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

pub(super) fn range(spec: &PortSpec, max: i64) -> Result<(u16, u16), String> {
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
