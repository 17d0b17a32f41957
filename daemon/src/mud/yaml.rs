//! Renders an imported profile as a vendor file in the shape of
//! `policies/vendors/*.yaml`. Every string is written as a JSON string,
//! which YAML reads as a double-quoted scalar: no quoting rules to get
//! wrong, whatever the MUD file's text holds.

use std::fmt::Write;

use super::{
    entry::{ICMP, ICMPV6, TCP, UDP},
    profile::{Profile, Rule},
};

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn proto(p: Option<u8>) -> String {
    match p {
        None => "any".into(),
        Some(TCP) => "tcp".into(),
        Some(UDP) => "udp".into(),
        Some(ICMP) => "icmp".into(),
        Some(ICMPV6) => "icmpv6".into(),
        Some(n) => n.to_string(),
    }
}

fn rule(out: &mut String, key: &str, r: &Rule) {
    let _ = writeln!(out, "      - {key}: {}", q(&r.peer));
    let _ = writeln!(out, "        proto: {}", proto(r.proto));
    match r.ports {
        Some((lo, hi)) if lo == hi => {
            let _ = writeln!(out, "        ports: {lo}");
        }
        Some((lo, hi)) => {
            let _ = writeln!(out, "        ports: \"{lo}-{hi}\"");
        }
        None => {}
    }
    if let Some(t) = r.icmp_type {
        let _ = writeln!(out, "        types: {t}");
    }
    let aces: Vec<&str> = r.aces.iter().map(String::as_str).collect();
    let acls: Vec<&str> = r.acls.iter().map(String::as_str).collect();
    let (ace_word, acl_word) = (
        if aces.len() > 1 { "ACEs" } else { "ACE" },
        if acls.len() > 1 { "ACLs" } else { "ACL" },
    );
    let _ = writeln!(
        out,
        "        section: {}",
        q(&format!("MUD {ace_word} {}", aces.join(", ")))
    );
    let _ = writeln!(
        out,
        "        comment: {}",
        q(&format!("{acl_word} {}", acls.join(", ")))
    );
}

/// The vendor file for `p`, imported from `from` (the MUD file's path).
pub fn render(p: &Profile, from: &str) -> String {
    let mut out = String::new();
    out.push_str("# yaml-language-server: $schema=../policy.schema.json\n");
    let _ = writeln!(
        out,
        "# Imported by `iotfence mud import` from the MUD file (RFC 8520) {from}"
    );
    let _ = writeln!(out, "# mud-url: {}", p.mud_url);
    if !p.answers.is_empty() {
        let _ = writeln!(
            out,
            "# Answers of flows other ACEs open (passed on the flow, no rule needed): {}",
            p.answers.join(", ")
        );
    }
    if !p.requires.is_empty() {
        out.push_str("# The site policy sets each required variable under `vars:`.\n");
        out.push_str("\nrequires:\n");
        for (name, r) in &p.requires {
            let _ = writeln!(out, "  {}:", q(name));
            let _ = writeln!(out, "    description: {}", q(&r.description));
            let _ = writeln!(
                out,
                "    kind: {}",
                if r.networks { "networks" } else { "hosts" }
            );
        }
    }
    out.push_str("\nprofiles:\n");
    let _ = writeln!(out, "  {}:", q(&p.name));
    let _ = writeln!(out, "    description: {}", q(&p.description));
    let _ = writeln!(out, "    source: {}", q(&p.source));
    out.push_str("    mode: enforce\n");
    let _ = writeln!(out, "    use: [{}]", p.uses.join(", "));
    for (key, list, item) in [("egress", &p.egress, "to"), ("inbound", &p.inbound, "from")] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "    {key}:");
        for r in list {
            rule(&mut out, item, r);
        }
    }
    if !p.limitations.is_empty() {
        out.push_str("    limitations:\n");
        for l in &p.limitations {
            let _ = writeln!(out, "      - {}", q(l));
        }
    }
    out
}
