//! Destinations: addresses and CIDRs (checked against the services'
//! families) and domain patterns.

use std::net::IpAddr;

use iotfence_common::{
    consts::{LEARNED_RULES_PER_ADDR, PROTO_ICMP, PROTO_ICMPV6},
    PortRule,
};
use ipnet::IpNet;
use serde_saphyr::Location;

use crate::{config::Config, diag::Diags, policy::pattern::Pattern};

use super::{DomainRule, Draft};

/// One egress destination: an address or CIDR, or a domain pattern.
pub(super) fn destination(
    d: &mut Diags<'_>,
    loc: Location,
    text: &str,
    services: &[PortRule],
    out: &mut Draft,
    cfg: &Config,
) {
    if is_name(text) {
        domain_rule(d, loc, text, services, &mut out.domains, cfg);
    } else if let Some(net) = parse_net(d, loc, text) {
        check_family(d, loc, &net, services);
        if net.prefix_len() == 0 {
            d.warn_at(
                loc,
                format!("`{text}` allows every destination of its address family"),
                Some("name the vendor's networks or domains instead"),
            );
        }
        out.egress.extend(services.iter().map(|s| (net, *s)));
    }
}

/// ICMP never reaches an IPv6 address, nor ICMPv6 an IPv4 one.
pub(super) fn check_family(d: &mut Diags<'_>, loc: Location, net: &IpNet, services: &[PortRule]) {
    for s in services {
        let bad = match (s.proto, net) {
            (PROTO_ICMP, IpNet::V6(_)) => {
                Some("icmp to an IPv6 destination can never match; use icmpv6")
            }
            (PROTO_ICMPV6, IpNet::V4(_)) => {
                Some("icmpv6 to an IPv4 destination can never match; use icmp")
            }
            _ => None,
        };
        if let Some(msg) = bad {
            d.at(loc, format!("{net}: {msg}"), None);
            return;
        }
    }
}

pub(super) fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// Looks like a domain or pattern rather than an address.
pub(super) fn is_name(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('*')
        || (t.parse::<IpNet>().is_err()
            && t.parse::<IpAddr>().is_err()
            && t.contains('.')
            && t.chars().any(|c| c.is_ascii_alphabetic())
            && !t.contains(':')
            && !t.contains('/'))
}

pub(super) fn domain_rule(
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

pub(super) fn parse_net(d: &mut Diags<'_>, loc: Location, text: &str) -> Option<IpNet> {
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
