//! The draft profile: a policy file with one profile allowing what the
//! device did while it was learned. Names become domain rules (siblings
//! collapsed, see `collapse`), each with the protocols and ports used;
//! addresses no DNS answer named are address rules flagged as a policy
//! smell; DHCP and DNS to the site's servers become `use:` blocks; counts
//! and first/last seen are YAML comments. A pure function of the report,
//! so the README's example is checked against it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write,
    net::IpAddr,
};

use iotfence_common::consts::{
    LEARNED_RULES_PER_ADDR, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, RULES_PER_PREFIX,
};

use crate::policy::pattern::Pattern;

use super::{
    collapse::{collapse, domain_order},
    report::{DestSeen, Report},
};

/// The site's servers, which the built-in blocks name.
pub struct Site {
    pub resolvers: Vec<IpAddr>,
    pub dhcp_servers: Vec<IpAddr>,
}

/// The draft's profile name for `device`.
pub fn profile_name(device: &str) -> String {
    format!("{device}-learned")
}

/// Flows, first and last seen of some destinations, for a comment.
#[derive(Default)]
struct Seen {
    flows: u64,
    first: String,
    last: String,
}

impl Seen {
    fn add(&mut self, d: &DestSeen) {
        self.flows += d.flows;
        if self.first.is_empty() || d.first < self.first {
            self.first = d.first.clone();
        }
        if d.last > self.last {
            self.last = d.last.clone();
        }
    }

    fn text(&self) -> String {
        let s = if self.flows == 1 { "" } else { "s" };
        format!(
            "{} flow{s}, first {}, last {}",
            self.flows, self.first, self.last
        )
    }
}

/// What the built-in blocks cover: `dhcp` or `dns`, if `d` is theirs.
fn block_of(d: &DestSeen, site: &Site) -> Option<&'static str> {
    let dhcp4: IpAddr = [255, 255, 255, 255].into();
    let dhcp6: IpAddr = "ff02::1:2".parse().expect("an address");
    match (d.proto, d.port) {
        (PROTO_UDP | PROTO_TCP, 53) if site.resolvers.contains(&d.addr) => Some("dns"),
        (PROTO_UDP, 67) if d.addr == dhcp4 || site.dhcp_servers.contains(&d.addr) => Some("dhcp"),
        (PROTO_UDP, 547) if d.addr == dhcp6 || site.dhcp_servers.contains(&d.addr) => Some("dhcp"),
        _ => None,
    }
}

/// Destinations reached by address alone: no DNS answer named them and no
/// built-in block covers them (the draft's policy smells).
pub fn literal(r: &Report, site: &Site) -> usize {
    r.destinations
        .iter()
        .filter(|d| rule_names(d).is_empty() && block_of(d, site).is_none())
        .count()
}

/// The names of `d` a rule can hold (a DNS answer may carry a name no
/// policy accepts, with spaces or escapes: its address stays literal).
fn rule_names(d: &DestSeen) -> Vec<&str> {
    d.names
        .iter()
        .filter(|n| matches!(Pattern::parse(n), Ok(Pattern::Exact(_))))
        .map(String::as_str)
        .collect()
}

/// Text for a comment: one line, printable.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A YAML scalar: plain when that is unambiguous, else double-quoted.
fn scalar(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if plain {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The (protocol, port range) rules one destination may carry: a domain
/// pattern's learned address holds `LEARNED_RULES_PER_ADDR`, an address
/// prefix `RULES_PER_PREFIX` (what `iotfence check` enforces).
const NAME_BUDGET: usize = LEARNED_RULES_PER_ADDR;
const ADDRESS_BUDGET: usize = RULES_PER_PREFIX;

/// Ports as ranges within `budget` rules in all (protocols without ports
/// take one each): consecutive ports merge, then the closest neighbours of
/// one protocol until it fits. Returns each protocol's ranges and how many
/// ports the merging allowed that were never seen.
fn ranges(
    used: &BTreeMap<u8, BTreeSet<u16>>,
    budget: usize,
) -> (BTreeMap<u8, Vec<(u16, u16)>>, u32) {
    let mut out: BTreeMap<u8, Vec<(u16, u16)>> = BTreeMap::new();
    for (proto, ports) in used {
        let mut r: Vec<(u16, u16)> = Vec::new();
        if matches!(*proto, PROTO_TCP | PROTO_UDP) {
            for &p in ports {
                match r.last_mut() {
                    Some(last) if last.1.checked_add(1) == Some(p) => last.1 = p,
                    _ => r.push((p, p)),
                }
            }
        } else {
            r.push((0, 0));
        }
        out.insert(*proto, r);
    }
    let mut widened = 0;
    while out.values().map(Vec::len).sum::<usize>() > budget {
        // The smallest gap between neighbouring ranges of one protocol.
        let best = out
            .iter()
            .flat_map(|(proto, r)| {
                r.windows(2)
                    .enumerate()
                    .map(move |(i, w)| (w[1].0 - w[0].1, *proto, i))
            })
            .min();
        let Some((gap, proto, i)) = best else { break };
        let r = out.get_mut(&proto).expect("a protocol listed");
        r[i].1 = r[i + 1].1;
        r.remove(i + 1);
        widened += gap as u32 - 1;
    }
    (out, widened)
}

/// The rules of one destination (a pattern or an address): one per
/// protocol, with its ports (ranges) when it has them.
fn rules(out: &mut String, to: &str, used: &BTreeMap<u8, BTreeSet<u16>>, budget: usize) {
    let (ranges, widened) = ranges(used, budget);
    if widened > 0 {
        let _ = writeln!(
            out,
            "      # WIDENED to fit {budget} rules: the ranges below allow {widened} port(s) never seen"
        );
    }
    for (proto, r) in &ranges {
        let _ = writeln!(out, "      - to: [{}]", quoted(to));
        let _ = writeln!(out, "        proto: {}", proto_text(*proto));
        if matches!(*proto, PROTO_TCP | PROTO_UDP) {
            let list: Vec<String> = r
                .iter()
                .map(|&(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("\"{lo}-{hi}\"")
                    }
                })
                .collect();
            let _ = writeln!(out, "        ports: [{}]", list.join(", "));
        }
    }
}

/// Renders the draft of `r`.
pub fn render(r: &Report, site: &Site) -> String {
    let mut out = String::new();
    let mut blocks: BTreeMap<&str, Seen> = BTreeMap::new();
    // Destinations by the names that gave them, and literal ones.
    let mut named: BTreeMap<&str, Vec<&DestSeen>> = BTreeMap::new();
    let mut literal: BTreeMap<IpAddr, Vec<&DestSeen>> = BTreeMap::new();
    for d in &r.destinations {
        if let Some(b) = block_of(d, site) {
            blocks.entry(b).or_default().add(d);
        } else if rule_names(d).is_empty() {
            literal.entry(d.addr).or_default().push(d);
        } else {
            for n in rule_names(d) {
                named.entry(n).or_default().push(d);
            }
        }
    }
    let ended = match r.state.as_str() {
        "stopped" => "stopped early by the client",
        "running" => "still running",
        _ => "ran its course",
    };
    let _ = writeln!(
        out,
        "# Draft profile for {}, written by `iotfence learn`: what the device did",
        comment(&r.device)
    );
    let _ = writeln!(
        out,
        "# in {} s of the {} s asked ({ended}). It allows what was seen, nothing else: review it",
        r.observed_seconds, r.requested_seconds
    );
    let _ = writeln!(
        out,
        "# (a destination the device uses rarely may be missing), then give it to the device."
    );
    if r.names_over_cap + r.destinations_over_cap > 0 {
        let _ = writeln!(
            out,
            "# INCOMPLETE: the session's table was full; {} destination(s) and {} name(s) were not recorded.",
            r.destinations_over_cap, r.names_over_cap
        );
    }
    let name = profile_name(&r.device);
    let _ = writeln!(out, "profiles:\n  {}:", scalar(&name));
    let _ = writeln!(
        out,
        "    description: {}",
        quoted(&format!(
            "Learned from device {} (profile {} while it was learned)",
            r.device, r.profile
        ))
    );
    let _ = writeln!(
        out,
        "    source: {}",
        quoted(&format!(
            "learned by iotfence learn on {} from device {}, {} for {} s",
            r.daemon, r.device, r.started, r.observed_seconds
        ))
    );
    let _ = writeln!(out, "    mode: enforce");
    if !blocks.is_empty() {
        let list: Vec<&str> = blocks.keys().copied().collect();
        let _ = writeln!(out, "    use: [{}]", list.join(", "));
        for (b, seen) in &blocks {
            let _ = writeln!(out, "    # {b}: {}", seen.text());
        }
    }
    if named.is_empty() && literal.is_empty() {
        let _ = writeln!(out, "    egress: []");
    } else {
        let _ = writeln!(out, "    egress:");
    }
    let reached: BTreeSet<String> = named.keys().map(|n| n.to_string()).collect();
    let answers: BTreeMap<&str, u64> = r
        .names
        .iter()
        .map(|n| (n.name.as_str(), n.answers))
        .collect();
    for g in collapse(&reached) {
        let mut used: BTreeMap<u8, BTreeSet<u16>> = BTreeMap::new();
        let mut all = Seen::default();
        let mut lines = Vec::new();
        for m in &g.members {
            let mut seen = Seen::default();
            let mut ports = BTreeSet::new();
            for d in &named[m.as_str()] {
                used.entry(d.proto).or_default().insert(d.port);
                seen.add(d);
                all.add(d);
                ports.insert(port_text(d));
            }
            let asked = answers.get(m.as_str()).copied().unwrap_or(0);
            let ports: Vec<String> = ports.into_iter().collect();
            lines.push(format!(
                "{m} ({}): {}, {asked} answer(s)",
                ports.join(", "),
                seen.text()
            ));
        }
        if g.members.len() > 1 {
            let _ = writeln!(
                out,
                "      # {} names under {}: {}",
                g.members.len(),
                g.pattern,
                all.text()
            );
            for l in lines {
                let _ = writeln!(out, "      #   {l}");
            }
        } else {
            let _ = writeln!(out, "      # {}", lines[0]);
        }
        rules(&mut out, &g.pattern, &used, NAME_BUDGET);
    }
    for (addr, dests) in &literal {
        let mut used: BTreeMap<u8, BTreeSet<u16>> = BTreeMap::new();
        let mut seen = Seen::default();
        for d in dests {
            used.entry(d.proto).or_default().insert(d.port);
            seen.add(d);
        }
        let _ = writeln!(
            out,
            "      # POLICY SMELL: {addr} was reached without a DNS answer naming it (a hard-coded\n      # address: ask the vendor for its name, or keep it knowingly): {}",
            seen.text()
        );
        rules(&mut out, &addr.to_string(), &used, ADDRESS_BUDGET);
    }
    let unreached: Vec<_> = r
        .names
        .iter()
        .filter(|n| !reached.contains(&n.name))
        .collect();
    if !unreached.is_empty() {
        let _ = writeln!(out, "    # Resolved but never reached (not allowed above):");
        let mut unreached = unreached;
        unreached.sort_by_key(|n| domain_order(&n.name));
        for n in unreached {
            let _ = writeln!(
                out,
                "    #   {}: {} answer(s), last {}",
                comment(&n.name),
                n.answers,
                n.last
            );
        }
    }
    out
}

/// A protocol as a policy writes it: the names the policy knows, else
/// the number.
fn proto_text(proto: u8) -> String {
    match proto {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMP => "icmp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        n => n.to_string(),
    }
}

fn port_text(d: &DestSeen) -> String {
    let p = proto_text(d.proto);
    if matches!(d.proto, PROTO_TCP | PROTO_UDP) {
        format!("{p} {}", d.port)
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(list: &[(u8, &[u16])]) -> BTreeMap<u8, BTreeSet<u16>> {
        list.iter()
            .map(|(p, ports)| (*p, ports.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn a_name_no_rule_can_hold_leaves_its_address_literal() {
        let d = DestSeen {
            addr: "203.0.113.9".parse().unwrap(),
            proto: PROTO_TCP,
            port: 443,
            flows: 1,
            first: "t0".into(),
            last: "t1".into(),
            names: vec!["bad name\n.example".into()],
        };
        let r = Report {
            device: "d".into(),
            destinations: vec![d],
            names: vec![crate::learn::report::NameSeen {
                name: "bad name\n.example".into(),
                addresses: vec!["203.0.113.9".parse().unwrap()],
                answers: 1,
                first: "t0".into(),
                last: "t1".into(),
            }],
            ..Report::default()
        };
        let site = Site {
            resolvers: vec![],
            dhcp_servers: vec![],
        };
        let text = render(&r, &site);
        assert!(text.contains("POLICY SMELL: 203.0.113.9"), "{text}");
        assert!(
            text.contains("#   bad name?.example: 1 answer(s)"),
            "{text}"
        );
        assert_eq!(literal(&r, &site), 1);
    }

    #[test]
    fn consecutive_ports_merge_and_a_budget_widens_the_smallest_gaps() {
        let u = used(&[(PROTO_TCP, &[443, 8080, 8081, 8082]), (PROTO_ICMP, &[])]);
        let (r, widened) = ranges(&u, 8);
        assert_eq!(r[&PROTO_TCP], [(443, 443), (8080, 8082)]);
        assert_eq!((r[&PROTO_ICMP].len(), widened), (1, 0));
        let u = used(&[(PROTO_UDP, &[10, 12, 20, 100, 101, 200])]);
        let (r, widened) = ranges(&u, 3);
        assert_eq!(r[&PROTO_UDP], [(10, 20), (100, 101), (200, 200)]);
        assert_eq!(widened, 8);
    }
}
