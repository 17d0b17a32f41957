//! The `dns_learn` fuzz target's body: one query a device asked, the
//! domain patterns of its profile and one answer, through the daemon's
//! learner and its table. Nothing may panic, and whatever is learned must
//! be credited to the question asked and to a pattern of the profile.
//!
//! Input: a big-endian u16 length and that many bytes of the query message,
//! then the patterns (text lines) up to a NUL byte, then the answer.

use iotfence::{
    dns::{
        frame,
        learn::{examine, query_of, Route},
        pending::{Pending, QueryKey},
        table::{self, Credit, Limits, Table},
    },
    policy::{compile::DomainRule, pattern::Pattern},
};
use iotfence_common::{consts::PROTO_TCP, PortRule};

/// More patterns add nothing a fuzzer could find.
const MAX_PATTERNS: usize = 8;

pub struct DnsInput<'a> {
    pub query: &'a [u8],
    pub patterns: String,
    pub answer: &'a [u8],
}

pub fn decode(data: &[u8]) -> Option<DnsInput<'_>> {
    let qlen = u16::from_be_bytes([*data.first()?, *data.get(1)?]) as usize;
    let rest = data.get(2..)?;
    let query = &rest[..qlen.min(rest.len())];
    let rest = &rest[query.len()..];
    let nul = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    Some(DnsInput {
        query,
        patterns: String::from_utf8_lossy(&rest[..nul]).into_owned(),
        answer: rest.get(nul + 1..).unwrap_or(&[]),
    })
}

pub fn encode(query: &[u8], patterns: &[&str], answer: &[u8]) -> Vec<u8> {
    let mut out = (query.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(query);
    out.extend_from_slice(patterns.join("\n").as_bytes());
    out.push(0);
    out.extend_from_slice(answer);
    out
}

/// Each pattern gets its own port, so a credit naming the wrong pattern's
/// rules shows.
fn rules(text: &str) -> Vec<DomainRule> {
    text.lines()
        .filter_map(|l| Pattern::parse(l).ok())
        .take(MAX_PATTERNS)
        .enumerate()
        .map(|(i, pattern)| DomainRule {
            pattern,
            rules: vec![PortRule::new(PROTO_TCP, 443 + i as u16, 443 + i as u16)],
        })
        .collect()
}

pub fn route() -> Route {
    Route {
        device: 1,
        resolver: "192.0.2.1".parse().unwrap(),
        client: "192.0.2.10".parse().unwrap(),
        client_port: 40000,
    }
}

/// Panics on any broken invariant (the fuzzer's failure signal).
pub fn check(data: &[u8]) {
    let Some(input) = decode(data) else {
        return;
    };
    let rules = rules(&input.patterns);
    let r = route();
    let mut pending = Pending::new(16, 16, 10_000_000_000);
    let asked = query_of(input.query);
    if let Some((id, name)) = &asked {
        let key = QueryKey {
            client: r.client,
            port: r.client_port,
            resolver: r.resolver,
            id: *id,
        };
        pending.record(key, name.clone(), r.device, 0);
    }
    let limits = Limits {
        max_addresses_per_name: 4,
        max_entries_per_device: 8,
        max_entries: 8,
    };
    let mut t = Table::default();
    if let Ok(lesson) = examine(input.answer, r, &rules, &mut pending, 1) {
        let (_, name) = asked.as_ref().expect("learned from an answer to no query");
        assert_eq!(&lesson.name, name, "credited to another name");
        assert!(!lesson.addrs.is_empty(), "a lesson without addresses");
        assert!(!lesson.patterns.is_empty(), "a lesson without a pattern");
        for (p, pr) in &lesson.patterns {
            assert!(p.matches(name), "{p:?} does not match {name}");
            assert!(
                rules.iter().any(|d| &d.pattern == p && &d.rules == pr),
                "{p:?} with {pr:?} is not the profile's"
            );
        }
        for (addr, _) in &lesson.addrs {
            for (pattern, rules) in &lesson.patterns {
                let c = Credit {
                    name: lesson.name.clone(),
                    pattern: pattern.clone(),
                    rules: rules.clone(),
                    expires_ns: 100,
                };
                let _ = t.credit(&limits, r.device, *addr, c);
            }
        }
        // The answer consumed its query: a replay teaches nothing.
        assert!(
            examine(input.answer, r, &rules, &mut pending, 2).is_err(),
            "one query taught twice"
        );
    }
    check_table(&t, &limits, &rules, asked.as_ref().map(|(_, n)| n.as_str()));
    // The same bytes as a frame must not upset the frame parser.
    if let Some(f) = frame::parse(input.answer) {
        let _ = frame::messages(f.proto, &input.answer[f.payload.clone()]);
        let mut copy = input.answer.to_vec();
        frame::finalize_checksum(&mut copy, &f);
    }
}

fn check_table(t: &Table, limits: &Limits, rules: &[DomainRule], asked: Option<&str>) {
    assert!(t.len() <= limits.max_entries);
    for ((device, addr), credits) in t.entries() {
        assert_eq!(*device, 1);
        for c in credits {
            assert_eq!(
                Some(c.name.as_str()),
                asked,
                "{addr}: credited to {}",
                c.name
            );
            assert!(rules.iter().any(|d| d.pattern == c.pattern));
        }
        let value = table::value(credits).expect("an entry with credits has a value");
        assert!(value.count as usize <= value.expires.len());
        for lr in value.iter() {
            assert!(
                credits.iter().any(|c| c.rules.contains(&lr.rule)),
                "{addr}: kernel rule {:?} no credit carries",
                lr.rule
            );
        }
    }
}
