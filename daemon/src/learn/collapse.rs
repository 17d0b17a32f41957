//! Names to domain patterns: three or more names under one suffix become
//! `*.suffix`, where the suffix is the names' registrable domain or deeper
//! (by the Public Suffix List, private section included), never a public
//! suffix: `*.co.uk` would allow every British company, `*.cloudfront.net`
//! every CloudFront customer.
//!
//! The list comes from the `psl` crate: compiled in (nothing to fetch or
//! keep on the router), no_std and allocation-free, and released with every
//! change of the upstream list.

use std::collections::{BTreeMap, BTreeSet};

/// Names under one suffix that collapse into its wildcard.
pub const SIBLINGS: usize = 3;

/// A pattern for the draft (`*.suffix` or an exact name) and the names
/// it stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub pattern: String,
    pub members: Vec<String>,
}

/// The suffixes `name` may collapse under: its proper ancestors down to
/// its registrable domain, deepest first; none for a name without one.
fn suffixes(name: &str) -> Vec<&str> {
    let Some(registrable) = psl::domain_str(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = name;
    while let Some((_, parent)) = rest.split_once('.') {
        if parent.len() < registrable.len() {
            break;
        }
        out.push(parent);
        rest = parent;
    }
    out
}

/// Groups `names` (normalized): deepest suffix first, each name in one group.
pub fn collapse(names: &BTreeSet<String>) -> Vec<Group> {
    let mut under: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in names {
        for s in suffixes(n) {
            under.entry(s).or_default().push(n);
        }
    }
    let mut order: Vec<&str> = under.keys().copied().collect();
    order.sort_by_key(|s| (std::cmp::Reverse(s.split('.').count()), *s));
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    let mut groups = Vec::new();
    for s in order {
        let free: Vec<&str> = under[s]
            .iter()
            .copied()
            .filter(|n| !taken.contains(n))
            .collect();
        if free.len() >= SIBLINGS {
            taken.extend(&free);
            groups.push(Group {
                pattern: format!("*.{s}"),
                members: free.iter().map(|n| n.to_string()).collect(),
            });
        }
    }
    groups.extend(
        names
            .iter()
            .filter(|n| !taken.contains(n.as_str()))
            .map(|n| Group {
                pattern: n.clone(),
                members: vec![n.clone()],
            }),
    );
    groups.sort_by_key(|g| domain_order(g.pattern.trim_start_matches("*.")));
    groups
}

/// A sort key that keeps a domain's names together: its labels from the
/// top (`api.example.com` → `com.example.api`).
pub fn domain_order(name: &str) -> String {
    name.rsplit('.').collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(names: &[&str]) -> Vec<(String, usize)> {
        let set = names.iter().map(|n| n.to_string()).collect();
        collapse(&set)
            .into_iter()
            .map(|g| (g.pattern, g.members.len()))
            .collect()
    }

    #[test]
    fn three_siblings_collapse_two_do_not() {
        assert_eq!(
            run(&[
                "a.api.example.com",
                "b.api.example.com",
                "c.api.example.com",
                "x.example.org",
                "y.example.org"
            ]),
            [
                ("*.api.example.com".to_string(), 3),
                ("x.example.org".into(), 1),
                ("y.example.org".into(), 1)
            ]
        );
    }

    #[test]
    fn never_below_a_public_suffix() {
        // Registrable domains themselves: siblings only under `co.uk`,
        // `com` or CloudFront's private suffix, which are public.
        assert_eq!(run(&["a.co.uk", "b.co.uk", "c.co.uk"]).len(), 3);
        assert_eq!(run(&["one.com", "two.com", "three.com"]).len(), 3);
        assert_eq!(
            run(&[
                "d1.cloudfront.net",
                "d2.cloudfront.net",
                "d3.cloudfront.net"
            ])
            .len(),
            3
        );
        // Below a registrable domain of a multi-label suffix: collapsed to it.
        assert_eq!(
            run(&["a.shop.co.uk", "b.shop.co.uk", "c.x.shop.co.uk"]),
            [("*.shop.co.uk".to_string(), 3)]
        );
    }

    #[test]
    fn the_deepest_suffix_wins_and_the_apex_stays_exact() {
        assert_eq!(
            run(&[
                "a.eu.example.com",
                "b.eu.example.com",
                "c.eu.example.com",
                "d.us.example.com",
                "example.com"
            ]),
            [
                ("example.com".to_string(), 1),
                ("*.eu.example.com".into(), 3),
                ("d.us.example.com".into(), 1)
            ]
        );
    }
}
