//! Folding: an LPM lookup returns only the longest matching prefix, so
//! each covering prefix's rules are copied into the longer ones.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use iotfence_common::{consts::RULES_PER_PREFIX, PortRule, RuleSet};
use ipnet::IpNet;
use serde_saphyr::Location;

use crate::diag::Diags;

/// Groups rules by prefix and folds each covering prefix's rules into the
/// longer prefixes, because an LPM lookup returns only the longest match.
pub(super) fn fold(
    d: &mut Diags<'_>,
    loc: Option<Location>,
    name: &str,
    entries: Vec<(IpNet, PortRule)>,
) -> Vec<(IpNet, RuleSet)> {
    let mut inner = Diags::new(Path::new(""));
    match fold_entries(&mut inner, entries) {
        Some(v) => v,
        None => {
            for m in inner.list {
                let message = format!("profile `{name}`: {}", m.message);
                match loc {
                    Some(l) => d.at(l, message, m.hint.as_deref()),
                    None => d.file(message, m.hint.as_deref()),
                }
            }
            Vec::new()
        }
    }
}

pub(super) fn fold_entries(
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
    // A prefix's covering prefixes are found by truncating it to each
    // shorter prefix length in use and looking that up: testing every
    // prefix against every other took ~70 ms for 10,000 rules. Prefixes
    // are truncated (parse_net refuses host bits).
    let lens: BTreeSet<(bool, u8)> = by_prefix
        .keys()
        .map(|n| (n.addr().is_ipv4(), n.prefix_len()))
        .collect();
    let mut out = Vec::new();
    for net in by_prefix.keys() {
        debug_assert_eq!(net.trunc(), *net);
        let v4 = net.addr().is_ipv4();
        // In the map's order, as a full scan would meet them.
        let mut covers: Vec<&IpNet> = lens
            .iter()
            .filter(|(f, len)| *f == v4 && *len <= net.prefix_len())
            .filter_map(|(_, len)| {
                let c = IpNet::new(net.addr(), *len).ok()?.trunc();
                by_prefix.get_key_value(&c).map(|(k, _)| k)
            })
            .collect();
        covers.sort();
        let mut rules: Vec<PortRule> = Vec::new();
        for other in covers {
            for rule in &by_prefix[other] {
                if !rules.contains(rule) {
                    rules.push(*rule);
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

#[cfg(test)]
mod tests {
    use iotfence_common::consts::{PROTO_TCP, PROTO_UDP};

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn folded(entries: &[(&str, PortRule)]) -> Option<BTreeMap<IpNet, Vec<PortRule>>> {
        let mut d = Diags::new(Path::new("t.yaml"));
        let v = entries.iter().map(|(n, r)| (net(n), *r)).collect();
        fold_entries(&mut d, v).map(|out| {
            out.into_iter()
                .map(|(n, s)| (n, s.rules[..s.count as usize].to_vec()))
                .collect()
        })
    }

    #[test]
    fn covering_prefixes_fold_into_longer_ones_per_family() {
        let https = PortRule::new(PROTO_TCP, 443, 443);
        let ntp = PortRule::new(PROTO_UDP, 123, 123);
        let mqtt = PortRule::new(PROTO_TCP, 8883, 8883);
        let got = folded(&[
            ("198.51.100.0/24", https),
            ("198.51.100.7/32", ntp),
            ("198.51.100.0/24", https), // a duplicate is kept once
            ("203.0.113.0/24", mqtt),
            ("2001:db8:ff::/64", https),
            ("2001:db8:ff::7/128", ntp),
        ])
        .unwrap();
        assert_eq!(got[&net("198.51.100.0/24")], vec![https]);
        // The /32 carries its own rule and the /24's: a lookup of it
        // returns only the /32.
        assert_eq!(got[&net("198.51.100.7/32")], vec![https, ntp]);
        assert_eq!(got[&net("203.0.113.0/24")], vec![mqtt], "not covered");
        assert_eq!(got[&net("2001:db8:ff::7/128")], vec![https, ntp]);
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn too_many_rules_for_one_destination_are_refused() {
        let many: Vec<(&str, PortRule)> = (0..=RULES_PER_PREFIX as u16)
            .map(|i| {
                (
                    "198.51.100.0/24",
                    PortRule::new(PROTO_TCP, 1000 + i, 1000 + i),
                )
            })
            .collect();
        assert!(folded(&many).is_none());
        assert!(folded(&many[..RULES_PER_PREFIX]).is_some());
    }
}
