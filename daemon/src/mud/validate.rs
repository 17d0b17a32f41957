//! A structural check of a MUD file against the YANG modules it
//! instantiates (RFC 8520 `ietf-mud`, RFC 8519 `ietf-access-control-list`
//! with `ietf-packet-fields`, and `ietf-acldns`), in their RFC 7951 JSON
//! encoding: required leaves, the members each container may hold, leaf
//! types and ranges, the choices (one l3, one l4 match; a network or a
//! name), and that every ACL a policy names exists.
//!
//! Not a YANG validator: no maintained pure-Rust one exists (the `yang2`
//! crate binds the C libyang and needs the modules' YANG files at run
//! time), so the shape is written down here from the modules' trees. Members in another
//! module's namespace are extension nodes, allowed when the file declares
//! `extensions` (RFC 8520 section 3.7: MUD managers ignore what they do not
//! understand).

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde_json::{Map, Value};

struct Check {
    problems: Vec<String>,
    extensions: bool,
}

impl Check {
    fn bad(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {what}"));
    }

    /// `obj`'s members must be in `allowed` (or extension nodes).
    fn members(&mut self, at: &str, obj: &Map<String, Value>, allowed: &[&str]) {
        for k in obj.keys() {
            if !(allowed.contains(&k.as_str()) || (self.extensions && k.contains(':'))) {
                self.bad(at, format!("unknown member `{k}`"));
            }
        }
    }

    fn object<'v>(&mut self, at: &str, v: &'v Value) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.bad(at, "is not an object");
        }
        o
    }

    fn uint(&mut self, at: &str, v: &Value, min: u64, max: u64) {
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => {}
            _ => self.bad(at, format!("is not an integer in {min}..{max}")),
        }
    }

    fn string<'v>(&mut self, at: &str, v: &'v Value) -> Option<&'v str> {
        let s = v.as_str();
        if s.is_none() {
            self.bad(at, "is not a string");
        }
        s
    }

    fn uri(&mut self, at: &str, v: &Value) {
        if let Some(s) = self.string(at, v) {
            let scheme = s.split_once(':').map(|(a, _)| a);
            let ok = scheme.is_some_and(|sc| {
                !sc.is_empty()
                    && sc.starts_with(|c: char| c.is_ascii_alphabetic())
                    && sc
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            }) && !s.contains(char::is_whitespace);
            if !ok {
                self.bad(at, format!("`{s}` is not a URI"));
            }
        }
    }

    fn empty_leaf(&mut self, at: &str, v: &Value) {
        if v != &Value::Array(vec![Value::Null]) {
            self.bad(at, "an empty leaf is [null]");
        }
    }

    fn host(&mut self, at: &str, v: &Value) {
        if let Some(s) = self.string(at, v) {
            let s = s.strip_suffix('.').unwrap_or(s);
            let ok = !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                        && !l.ends_with('-')
                });
            if !ok {
                self.bad(at, format!("`{s}` is not a domain name (inet:host)"));
            }
        }
    }
}

/// Every problem found, as `path: what`; empty when the file has the shape.
pub fn check(file: &Value) -> Vec<String> {
    let extensions = file
        .pointer("/ietf-mud:mud/extensions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let mut c = Check {
        problems: Vec::new(),
        extensions,
    };
    let Some(root) = c.object("/", file) else {
        return c.problems;
    };
    c.members(
        "/",
        root,
        &["ietf-mud:mud", "ietf-access-control-list:acls"],
    );
    let mut acl_names = BTreeSet::new();
    if let Some(acls) = root.get("ietf-access-control-list:acls") {
        acls_check(&mut c, acls, &mut acl_names);
    }
    match root.get("ietf-mud:mud") {
        None => c.bad("/", "no ietf-mud:mud container"),
        Some(m) => mud_check(&mut c, m, &acl_names),
    }
    c.problems
}

fn mud_check(c: &mut Check, m: &Value, acls: &BTreeSet<String>) {
    let at = "/ietf-mud:mud";
    let Some(m) = c.object(at, m) else { return };
    c.members(
        at,
        m,
        &[
            "mud-version",
            "mud-url",
            "last-update",
            "mud-signature",
            "cache-validity",
            "is-supported",
            "systeminfo",
            "mfg-name",
            "model-name",
            "firmware-rev",
            "software-rev",
            "documentation",
            "extensions",
            "from-device-policy",
            "to-device-policy",
        ],
    );
    for req in ["mud-version", "mud-url", "last-update", "is-supported"] {
        if !m.contains_key(req) {
            c.bad(at, format!("the mandatory leaf `{req}` is missing"));
        }
    }
    if let Some(v) = m.get("mud-version") {
        c.uint(&format!("{at}/mud-version"), v, 1, 1);
    }
    if let Some(v) = m.get("mud-url") {
        c.uri(&format!("{at}/mud-url"), v);
        if v.as_str().is_some_and(|s| !s.starts_with("https://")) {
            c.bad(
                &format!("{at}/mud-url"),
                "a MUD URL uses the https scheme (RFC 8520)",
            );
        }
    }
    if let Some(v) = m.get("last-update") {
        if let Some(s) = c.string(&format!("{at}/last-update"), v) {
            if !date_and_time(s) {
                c.bad(
                    &format!("{at}/last-update"),
                    format!("`{s}` is not a yang:date-and-time"),
                );
            }
        }
    }
    for key in ["mud-signature", "documentation"] {
        if let Some(v) = m.get(key) {
            c.uri(&format!("{at}/{key}"), v);
        }
    }
    if let Some(v) = m.get("cache-validity") {
        c.uint(&format!("{at}/cache-validity"), v, 1, 168);
    }
    if let Some(v) = m.get("is-supported") {
        if !v.is_boolean() {
            c.bad(&format!("{at}/is-supported"), "is not a boolean");
        }
    }
    for key in [
        "systeminfo",
        "mfg-name",
        "model-name",
        "firmware-rev",
        "software-rev",
    ] {
        if let Some(v) = m.get(key) {
            c.string(&format!("{at}/{key}"), v);
        }
    }
    if let Some(v) = m.get("extensions") {
        match v.as_array() {
            Some(list) => {
                for (i, x) in list.iter().enumerate() {
                    if !x.as_str().is_some_and(|s| (1..=40).contains(&s.len())) {
                        c.bad(
                            &format!("{at}/extensions/{i}"),
                            "is not a string of 1 to 40 characters",
                        );
                    }
                }
            }
            None => c.bad(&format!("{at}/extensions"), "is not a list"),
        }
    }
    for key in ["from-device-policy", "to-device-policy"] {
        let Some(p) = m.get(key) else { continue };
        let at = format!("{at}/{key}");
        let Some(p) = c.object(&at, p) else { continue };
        c.members(&at, p, &["access-lists"]);
        let Some(l) = p.get("access-lists") else {
            continue;
        };
        let at = format!("{at}/access-lists");
        let Some(l) = c.object(&at, l) else { continue };
        c.members(&at, l, &["access-list"]);
        let list = l.get("access-list").and_then(Value::as_array);
        for (i, r) in list.into_iter().flatten().enumerate() {
            let at = format!("{at}/access-list/{i}");
            let Some(r) = c.object(&at, r) else { continue };
            c.members(&at, r, &["name"]);
            match r.get("name").and_then(Value::as_str) {
                Some(n) if acls.contains(n) => {}
                Some(n) => c.bad(
                    &at,
                    format!("names the ACL `{n}`, which the file does not define"),
                ),
                None => c.bad(&at, "has no name"),
            }
        }
    }
}

/// RFC 3339 as `yang:date-and-time` has it: date, `T`, time, optional
/// fraction, and `Z` or an offset.
fn date_and_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+') | Some(b'-') => {
            digits(i + 1..i + 3)
                && b.get(i + 3) == Some(&b':')
                && digits(i + 4..i + 6)
                && i + 6 == b.len()
        }
        _ => false,
    }
}

fn acls_check(c: &mut Check, acls: &Value, names: &mut BTreeSet<String>) {
    let at = "/ietf-access-control-list:acls";
    let Some(o) = c.object(at, acls) else { return };
    c.members(at, o, &["acl"]);
    let list = o.get("acl").and_then(Value::as_array);
    for (i, acl) in list.into_iter().flatten().enumerate() {
        let at = format!("{at}/acl/{i}");
        let Some(a) = c.object(&at, acl) else {
            continue;
        };
        c.members(&at, a, &["name", "type", "aces"]);
        let Some(name) = a.get("name").and_then(Value::as_str) else {
            c.bad(&at, "has no name");
            continue;
        };
        if !(1..=64).contains(&name.len()) {
            c.bad(
                &at,
                format!("the ACL name `{name}` is not 1 to 64 characters"),
            );
        }
        if !names.insert(name.to_string()) {
            c.bad(&at, format!("the ACL name `{name}` is used twice"));
        }
        let kind = a
            .get("type")
            .and_then(Value::as_str)
            .map(super::entry::unprefixed);
        // Which l2/l3 matches the type admits (RFC 8519's `when`s).
        let family = match kind {
            Some("ipv4-acl-type") => Family {
                v4: true,
                v6: false,
                eth: false,
            },
            Some("ipv6-acl-type") => Family {
                v4: false,
                v6: true,
                eth: false,
            },
            Some("mixed-eth-ipv4-acl-type") => Family {
                v4: true,
                v6: false,
                eth: true,
            },
            Some("mixed-eth-ipv6-acl-type") => Family {
                v4: false,
                v6: true,
                eth: true,
            },
            Some("eth-acl-type") => Family {
                v4: false,
                v6: false,
                eth: true,
            },
            Some("mixed-eth-ipv4-ipv6-acl-type") | None => Family {
                v4: true,
                v6: true,
                eth: true,
            },
            Some(other) => {
                c.bad(&at, format!("unknown ACL type `{other}`"));
                Family {
                    v4: true,
                    v6: true,
                    eth: true,
                }
            }
        };
        let Some(aces) = a.get("aces") else { continue };
        let at = format!("{at}/aces");
        let Some(aces) = c.object(&at, aces) else {
            continue;
        };
        c.members(&at, aces, &["ace"]);
        let mut ace_names = BTreeSet::new();
        for (j, ace) in aces
            .get("ace")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{at}/ace/{j}");
            let Some(e) = c.object(&at, ace) else {
                continue;
            };
            c.members(&at, e, &["name", "matches", "actions"]);
            match e.get("name").and_then(Value::as_str) {
                Some(n) if (1..=64).contains(&n.len()) => {
                    if !ace_names.insert(n.to_string()) {
                        c.bad(&at, format!("the ACE name `{n}` is used twice in its ACL"));
                    }
                }
                _ => c.bad(&at, "has no name of 1 to 64 characters"),
            }
            if let Some(m) = e.get("matches") {
                matches_check(c, &format!("{at}/matches"), m, family);
            }
            match e
                .get("actions")
                .and_then(|a| a.get("forwarding"))
                .and_then(Value::as_str)
                .map(super::entry::unprefixed)
            {
                Some("accept") | Some("drop") | Some("reject") => {}
                _ => c.bad(&at, "actions/forwarding is not accept, drop or reject"),
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Family {
    v4: bool,
    v6: bool,
    eth: bool,
}

fn matches_check(c: &mut Check, at: &str, m: &Value, family: Family) {
    let Family { v4, v6, eth } = family;
    if m.get("eth").is_some() && !eth {
        c.bad(
            &format!("{at}/eth"),
            "in an ACL of a type without Ethernet matches",
        );
    }
    let Some(m) = c.object(at, m) else { return };
    c.members(
        at,
        m,
        &[
            "eth",
            "ipv4",
            "ipv6",
            "tcp",
            "udp",
            "icmp",
            "egress-interface",
            "ingress-interface",
            "ietf-mud:mud",
        ],
    );
    let l3: Vec<&str> = ["ipv4", "ipv6"]
        .into_iter()
        .filter(|k| m.contains_key(*k))
        .collect();
    if l3.len() > 1 {
        c.bad(at, format!("matches {} (one l3 choice)", l3.join(" and ")));
    }
    let l4: Vec<&str> = ["tcp", "udp", "icmp"]
        .into_iter()
        .filter(|k| m.contains_key(*k))
        .collect();
    if l4.len() > 1 {
        c.bad(at, format!("matches {} (one l4 choice)", l4.join(" and ")));
    }
    for (key, ok, family_v6) in [("ipv4", v4, false), ("ipv6", v6, true)] {
        let Some(ip) = m.get(key) else { continue };
        let at = format!("{at}/{key}");
        if !ok {
            c.bad(&at, "in an ACL of another type");
        }
        let Some(ip) = c.object(&at, ip) else {
            continue;
        };
        let (dst, src) = if family_v6 {
            ("destination-ipv6-network", "source-ipv6-network")
        } else {
            ("destination-ipv4-network", "source-ipv4-network")
        };
        let mut allowed = vec![
            "dscp",
            "ecn",
            "length",
            "ttl",
            "protocol",
            dst,
            src,
            "ietf-acldns:dst-dnsname",
            "ietf-acldns:src-dnsname",
        ];
        allowed.extend(if family_v6 {
            &["flow-label"][..]
        } else {
            &["ihl", "flags", "offset", "identification"][..]
        });
        c.members(&at, ip, &allowed);
        if let Some(p) = ip.get("protocol") {
            c.uint(&format!("{at}/protocol"), p, 0, 255);
        }
        for k in [dst, src] {
            let Some(v) = ip.get(k) else { continue };
            let ok = v
                .as_str()
                .and_then(|s| s.parse::<IpNet>().ok())
                .is_some_and(|n| n.addr().is_ipv6() == family_v6);
            if !ok {
                c.bad(
                    &format!("{at}/{k}"),
                    format!(
                        "{v} is not an {} prefix",
                        if family_v6 { "IPv6" } else { "IPv4" }
                    ),
                );
            }
        }
        for (net, name) in [
            (dst, "ietf-acldns:dst-dnsname"),
            (src, "ietf-acldns:src-dnsname"),
        ] {
            if let Some(v) = ip.get(name) {
                c.host(&format!("{at}/{name}"), v);
                if ip.contains_key(net) {
                    c.bad(&at, format!("{net} and {name} are cases of one choice"));
                }
            }
        }
    }
    for key in ["tcp", "udp"] {
        let Some(l) = m.get(key) else { continue };
        let at = format!("{at}/{key}");
        let Some(l) = c.object(&at, l) else { continue };
        let allowed: &[&str] = if key == "tcp" {
            &[
                "sequence-number",
                "acknowledgement-number",
                "data-offset",
                "reserved",
                "flags",
                "window-size",
                "urgent-pointer",
                "options",
                "source-port",
                "destination-port",
                "ietf-mud:direction-initiated",
            ]
        } else {
            &["length", "source-port", "destination-port"]
        };
        c.members(&at, l, allowed);
        for p in ["source-port", "destination-port"] {
            if let Some(v) = l.get(p) {
                port_check(c, &format!("{at}/{p}"), v);
            }
        }
        if let Some(d) = l.get("ietf-mud:direction-initiated") {
            if !matches!(d.as_str(), Some("from-device") | Some("to-device")) {
                c.bad(
                    &format!("{at}/ietf-mud:direction-initiated"),
                    "is not from-device or to-device",
                );
            }
        }
        let want = if key == "tcp" { 6 } else { 17 };
        for ip in ["ipv4", "ipv6"] {
            if let Some(p) = m
                .get(ip)
                .and_then(|i| i.get("protocol"))
                .and_then(Value::as_u64)
            {
                if p != want {
                    c.bad(&at, format!("{key} match with {ip} protocol {p}"));
                }
            }
        }
    }
    if let Some(i) = m.get("icmp") {
        let at = format!("{at}/icmp");
        if let Some(i) = c.object(&at, i) {
            c.members(&at, i, &["type", "code", "rest-of-header"]);
            for k in ["type", "code"] {
                if let Some(v) = i.get(k) {
                    c.uint(&format!("{at}/{k}"), v, 0, 255);
                }
            }
        }
    }
    if let Some(x) = m.get("ietf-mud:mud") {
        let at = format!("{at}/ietf-mud:mud");
        if let Some(x) = c.object(&at, x) {
            c.members(
                &at,
                x,
                &[
                    "manufacturer",
                    "same-manufacturer",
                    "model",
                    "local-networks",
                    "controller",
                    "my-controller",
                ],
            );
            for k in ["same-manufacturer", "local-networks", "my-controller"] {
                if let Some(v) = x.get(k) {
                    c.empty_leaf(&format!("{at}/{k}"), v);
                }
            }
            if let Some(v) = x.get("manufacturer") {
                c.host(&format!("{at}/manufacturer"), v);
            }
            for k in ["model", "controller"] {
                if let Some(v) = x.get(k) {
                    c.uri(&format!("{at}/{k}"), v);
                }
            }
        }
    }
}

fn port_check(c: &mut Check, at: &str, v: &Value) {
    let Some(p) = c.object(at, v) else { return };
    c.members(at, p, &["lower-port", "upper-port", "operator", "port"]);
    let range = p.contains_key("lower-port") || p.contains_key("upper-port");
    let op = p.contains_key("operator") || p.contains_key("port");
    if range == op {
        c.bad(
            at,
            "is a range (lower-port, upper-port) or an operator and port",
        );
        return;
    }
    if range {
        let (lo, hi) = (
            p.get("lower-port").and_then(Value::as_u64),
            p.get("upper-port").and_then(Value::as_u64),
        );
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi && hi <= 65535 => {}
            _ => c.bad(at, "lower-port and upper-port are ports, lower first"),
        }
    } else {
        match p.get("port") {
            Some(n) => c.uint(&format!("{at}/port"), n, 0, 65535),
            None => c.bad(at, "operator without port"),
        }
        if let Some(o) = p.get("operator") {
            if !matches!(
                o.as_str(),
                Some("lte") | Some("gte") | Some("eq") | Some("neq")
            ) {
                c.bad(&format!("{at}/operator"), "is not lte, gte, eq or neq");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        for ok in [
            "2019-01-28T11:20:51+01:00",
            "2026-05-12T15:01:30.263Z",
            "2018-04-08T00:06:47.953+10:00",
        ] {
            assert!(date_and_time(ok), "{ok}");
        }
        for bad in [
            "2019-01-28",
            "2019-01-28T11:20:51",
            "2019-01-28 11:20:51Z",
            "2019-01-28T11:20:51+0100",
            "2019-01-28T11:20:51.Z",
        ] {
            assert!(!date_and_time(bad), "{bad}");
        }
    }
}
