//! `mud import`: a MUD file (RFC 8520) to a vendor profile.
//!
//! The firewall is stateful: a rule lets the device open flows (egress)
//! or lets a peer open them (inbound), and the answers ride the flow. A
//! MUD file lists both directions as stateless ACEs, so each ACE is read
//! as what opens a flow or as the answers of one:
//! - a TCP ACE with `direction-initiated` opens the flow in that direction;
//! - an ACE with a source port and no destination port answers (the other
//!   side's destination port is its source port), as does an ICMP reply
//!   type (echo reply, ...);
//! - a to-device ACE without ports that mirrors a from-device one (same
//!   peer and protocol) is that flow's answers;
//! - anything else opens flows: from-device ones are egress rules,
//!   to-device ones inbound rules.
//!
//! Answers that no ACE of the other policy opens, and everything the
//! policy language cannot say, become limitations naming their ACEs.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    entry::{self, Dir, Entry, Peer, ICMP, ICMPV6, TCP, UDP},
    model::MudFile,
    notes::Notes,
    profile::{Profile, Require, Rule},
    vars::{self, Class, DNS_URN, GATEWAY_URN, NTP_URN, NTP_VAR},
};

/// The extension `mud export` declares for its `dnsname-wildcard` leaf.
pub const EXTENSION: &str = "iotfence-mud";

pub fn import(mud: &MudFile, name: Option<&str>) -> Result<Profile, String> {
    let m = &mud.mud;
    if m.mud_version != 1 {
        return Err(format!(
            "mud-version {} (this reads version 1, RFC 8520)",
            m.mud_version
        ));
    }
    if m.mud_url.trim().is_empty() {
        return Err("mud-url is empty".into());
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => profile_name(&m.mud_url),
    };
    let mut notes = Notes::default();
    for key in mud.rest.keys() {
        notes.general(format!(
            "The file's top-level member {key} is not understood: ignored."
        ));
    }
    for key in m.rest.keys() {
        notes.general(format!("The MUD member {key} is not understood: ignored."));
    }
    for x in m.extensions.iter().filter(|x| *x != EXTENSION) {
        notes.general(format!("The MUD extension {x} is not understood: ignored."));
    }
    if !m.is_supported {
        notes.general(
            "is-supported is false: the manufacturer no longer updates this device's software."
                .into(),
        );
    }
    if let Some(sig) = &m.mud_signature {
        notes.general(format!(
            "iotfence does not verify the file's signature ({sig}); check it before importing."
        ));
    }
    let entries = read_entries(mud, &mut notes)?;
    let mut b = Build {
        name: name.clone(),
        mud_url: m.mud_url.clone(),
        notes,
        uses: BTreeSet::new(),
        requires: BTreeMap::new(),
        egress: Vec::new(),
        inbound: Vec::new(),
        answers: Vec::new(),
        families: BTreeMap::new(),
        dns_protos: BTreeSet::new(),
        dns_aces: Vec::new(),
    };
    b.rules(&entries);
    for (block, what) in [
        ("dhcp", "DHCP (`use: [dhcp]`) is allowed, as MUD managers allow it, so the device gets an address."),
        ("dns", "DNS to the site's resolvers (`use: [dns]`) is allowed, as MUD managers allow it, so the device resolves the names it needs."),
    ] {
        if b.uses.insert(block) {
            b.notes.general(format!("Not in the MUD file: {what}"));
        }
    }
    let uses = ["dhcp", "dns", "ntp"]
        .into_iter()
        .filter(|u| b.uses.contains(u))
        .collect();
    let description = [m.mfg_name.as_deref(), m.model_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let description = match (description.is_empty(), &m.systeminfo) {
        (false, Some(s)) => format!("{description}: {s}"),
        (false, None) => description,
        (true, Some(s)) => s.clone(),
        (true, None) => m.mud_url.clone(),
    };
    let mut source = format!("MUD file {} (last-update {}", m.mud_url, m.last_update);
    for (k, v) in [
        ("documentation", &m.documentation),
        ("firmware-rev", &m.firmware_rev),
        ("software-rev", &m.software_rev),
    ] {
        if let Some(v) = v {
            source.push_str(&format!(", {k} {v}"));
        }
    }
    source.push(')');
    Ok(Profile {
        name,
        description,
        source,
        uses,
        egress: b.egress,
        inbound: b.inbound,
        limitations: b.notes.render(),
        requires: b.requires,
        answers: b.answers,
        mud_url: m.mud_url.clone(),
    })
}

/// The profile's name from the MUD URL's last path segment
/// (`https://lighting.example.com/lightbulb2000` -> `lightbulb2000`).
pub fn profile_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let last = last.strip_suffix(".json").unwrap_or(last);
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() || name.contains("://") {
        "mud-device".into()
    } else {
        name
    }
}

/// Every ACE of the ACLs the two policies name, in policy order.
fn read_entries(mud: &MudFile, notes: &mut Notes) -> Result<Vec<Entry>, String> {
    if mud.acls.is_some() && mud.draft_acls.is_some() {
        return Err("both ietf-access-control-list:acls and the draft name ietf-access-control-list:access-lists".into());
    }
    if mud.draft_acls.is_some() {
        notes.general("The ACLs are under the pre-RFC 8519 name ietf-access-control-list:access-lists, read as ietf-access-control-list:acls.".into());
    }
    let acls = mud
        .acls
        .as_ref()
        .or(mud.draft_acls.as_ref())
        .map(|a| a.acl.as_slice())
        .unwrap_or_default();
    let mut by_name = BTreeMap::new();
    for acl in acls {
        if by_name.insert(acl.name.as_str(), acl).is_some() {
            return Err(format!("ACL {} is defined twice", acl.name));
        }
    }
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    let policies = [
        (Dir::From, "from-device-policy", &mud.mud.from_device_policy),
        (Dir::To, "to-device-policy", &mud.mud.to_device_policy),
    ];
    for (dir, key, policy) in policies {
        let Some(policy) = policy else { continue };
        for r in &policy.access_lists.access_list {
            let acl = by_name.get(r.name.as_str()).ok_or_else(|| {
                format!(
                    "{key} names the ACL {}, which the file does not define",
                    r.name
                )
            })?;
            used.insert(r.name.as_str());
            let kind = acl.acl_type.as_deref().map(entry::unprefixed).unwrap_or("");
            let v6 = match kind {
                "ipv4-acl-type" | "mixed-eth-ipv4-acl-type" | "" => false,
                "ipv6-acl-type" | "mixed-eth-ipv6-acl-type" | "mixed-eth-ipv4-ipv6-acl-type" => {
                    true
                }
                "eth-acl-type" | "ethernet-acl-type" => {
                    let aces: Vec<&str> = acl.aces.ace.iter().map(|a| a.name.as_str()).collect();
                    notes.general(format!("The Ethernet ACL {} (ACEs {}) matches layer-2 headers, which iotfence's rules do not: not imported (frames it allowed that are not IP are not judged by these rules).", acl.name, aces.join(", ")));
                    continue;
                }
                other => {
                    return Err(format!(
                        "ACL {}: type {other} is not an IP ACL type",
                        acl.name
                    ))
                }
            };
            for ace in &acl.aces.ace {
                out.push(entry::read(dir, &acl.name, v6, ace, notes)?);
            }
        }
    }
    for acl in acls.iter().filter(|a| !used.contains(a.name.as_str())) {
        notes.general(format!(
            "The ACL {} is named by neither policy: ignored.",
            acl.name
        ));
    }
    Ok(out)
}

struct Build {
    name: String,
    mud_url: String,
    notes: Notes,
    uses: BTreeSet<&'static str>,
    requires: BTreeMap<String, Require>,
    egress: Vec<Rule>,
    inbound: Vec<Rule>,
    answers: Vec<String>,
    /// Names (of non-ICMP rules) and the families of the ACLs naming them,
    /// with each ACE's position in the file.
    families: BTreeMap<String, BTreeSet<(&'static str, usize, String)>>,
    /// The protocols and ACEs of the file's DNS ACEs.
    dns_protos: BTreeSet<Option<u8>>,
    dns_aces: Vec<String>,
}

fn has_only(ports: &Option<Vec<(u16, u16)>>, allowed: &[u16]) -> bool {
    ports
        .as_ref()
        .is_some_and(|v| v.iter().all(|&(lo, hi)| lo == hi && allowed.contains(&lo)))
}

/// ICMP and ICMPv6 types that answer a request of the other direction
/// (echo, timestamp, information, address mask replies).
fn reply_type(e: &Entry) -> bool {
    match (e.proto, e.icmp_type) {
        (Some(ICMP), Some(t)) => [0, 14, 16, 18].contains(&t),
        (Some(ICMPV6), Some(t)) => t == 129,
        _ => false,
    }
}

/// `a` could be the answers of the flows `b` opens.
fn mirrors(a: &Entry, b: &Entry) -> bool {
    a.dir != b.dir
        && b.accept
        && a.peer == b.peer
        && a.proto == b.proto
        && (a.src.is_none() || a.src == b.dst)
        && (a.dst.is_none() || a.dst == b.src)
}

impl Build {
    /// The built-in block an ACE is, if it is DHCP, or DNS or NTP to the
    /// registered controllers.
    fn block(e: &Entry) -> Option<&'static str> {
        let dhcp_peer = match &e.peer {
            Peer::Net(n) => {
                ["255.255.255.255/32", "ff02::1:2/128"].contains(&n.to_string().as_str())
            }
            Peer::Class(Class::Controller(c)) => c == GATEWAY_URN,
            _ => false,
        };
        let ports = if e.dir == Dir::From { &e.dst } else { &e.src };
        if e.proto == Some(UDP) && dhcp_peer && has_only(ports, &[67, 547]) {
            return Some("dhcp");
        }
        // Answers come from the server's own address: any peer.
        let answer_peer = dhcp_peer || e.peer == Peer::Any;
        if e.proto == Some(UDP)
            && e.dir == Dir::To
            && answer_peer
            && (has_only(&e.dst, &[68, 546]) || (has_only(&e.src, &[67, 547]) && e.dst.is_none()))
        {
            return Some("dhcp");
        }
        let Peer::Class(Class::Controller(c)) = &e.peer else {
            return None;
        };
        let any_port = ports.is_none();
        match c.as_str() {
            DNS_URN
                if matches!(e.proto, Some(TCP) | Some(UDP))
                    && (any_port || has_only(ports, &[53])) =>
            {
                Some("dns")
            }
            NTP_URN if e.proto == Some(UDP) && (any_port || has_only(ports, &[123])) => Some("ntp"),
            _ => None,
        }
    }

    fn is_answer(e: &Entry, all: &[Entry]) -> bool {
        if e.proto == Some(TCP) {
            if let Some(d) = e.initiated {
                return d != e.dir;
            }
        }
        if e.src.is_some() && e.dst.is_none() {
            return true;
        }
        if reply_type(e) {
            return true;
        }
        e.dir == Dir::To
            && e.src.is_none()
            && e.dst.is_none()
            && e.icmp_type.is_none()
            && all
                .iter()
                .any(|b| mirrors(e, b) && !Self::is_answer(b, &[]))
    }

    fn rules(&mut self, all: &[Entry]) {
        let mut answers: Vec<&Entry> = Vec::new();
        let mut openers: Vec<&Entry> = Vec::new();
        for e in all {
            if !e.accept {
                self.notes.add(&e.name, "denies traffic (drop or reject): not imported; iotfence only allows, so what it denies stays allowed where another ACE allows it".into());
                continue;
            }
            if let Some(block) = Self::block(e) {
                self.uses.insert(block);
                if block == "dns" && e.dir == Dir::From {
                    self.dns_protos.insert(e.proto);
                    self.dns_aces.push(e.name.clone());
                }
                if block == "ntp" {
                    self.requires.entry(NTP_VAR.into()).or_insert(Require {
                        description: format!(
                            "The site's NTP servers (MUD controller `{NTP_URN}`), for `use: [ntp]`"
                        ),
                        networks: false,
                    });
                }
                if (e.dir == Dir::From && e.dst.is_none()) || (e.dir == Dir::To && e.src.is_none())
                {
                    self.notes.add(&e.name, format!("allows every port to the {block} servers; the profile allows the service's own (`use: [{block}]`)"));
                }
                continue;
            }
            if Self::is_answer(e, all) {
                answers.push(e);
            } else {
                openers.push(e);
            }
        }
        for e in &openers {
            self.opener(e);
        }
        for e in answers {
            let icmp = matches!(e.proto, Some(ICMP) | Some(ICMPV6));
            let answered = openers.iter().any(|b| {
                mirrors(e, b)
                    || (icmp && b.dir != e.dir && b.peer == e.peer && b.proto == e.proto)
                    || (e.proto == Some(TCP)
                        && b.dir != e.dir
                        && b.peer == e.peer
                        && b.proto == e.proto
                        && e.src.as_ref().is_none_or(|s| Some(s) == b.dst.as_ref()))
            }) || all
                .iter()
                .any(|b| b.dir != e.dir && b.peer == e.peer && Self::block(b).is_some());
            if !answered {
                self.notes.add(&e.name, "answers flows that no ACE of the other policy opens: no rule (such flows are not allowed, so neither are these answers)".into());
                continue;
            }
            if !self.answers.contains(&e.name) {
                self.answers.push(e.name.clone());
            }
            if e.dir == Dir::To
                && e.src.is_none()
                && e.dst.is_none()
                && !matches!(e.peer, Peer::Name { .. })
            {
                self.notes.add(&e.name, format!("is read as the answers of the device's own flows to {}; if those peers also open flows to the device, add an inbound rule", entry::describe(&e.peer)));
            }
        }
        self.family_notes();
        if !self.dns_protos.is_empty() && !self.dns_protos.contains(&Some(TCP)) {
            for ace in self.dns_aces.clone() {
                self.notes.add(&ace, "allows DNS over UDP; `use: [dns]` also allows TCP port 53 to the resolvers (DNS falls back to TCP for long answers)".into());
            }
        }
    }

    /// The profile's text for a peer, registering site variables.
    fn peer(&mut self, e: &Entry, inbound: bool) -> Option<String> {
        Some(match &e.peer {
            Peer::Name { name, below } => {
                if inbound {
                    self.notes.add(&e.name, format!("lets {name} open flows to the device; a name cannot be an inbound source (a peer is only known by its address when its packet arrives): not imported"));
                    return None;
                }
                if *below {
                    format!("*.{name}")
                } else {
                    name.clone()
                }
            }
            Peer::Net(n) => n.to_string(),
            Peer::Any => if e.v6 { "::/0" } else { "0.0.0.0/0" }.to_string(),
            Peer::Class(c) => {
                let (var, description) = vars::to_var(c, &self.name, &self.mud_url);
                let r = self.requires.entry(var.clone()).or_insert(Require {
                    description,
                    networks: false,
                });
                r.networks |= inbound;
                if *c == Class::LocalNetworks {
                    self.notes.add(&e.name, "local-networks: traffic inside the device's own subnet is switched and never reaches the router, so iotfence neither sees nor limits it".into());
                }
                format!("${var}")
            }
        })
    }

    fn opener(&mut self, e: &Entry) {
        let inbound = e.dir == Dir::To;
        if e.src.is_some() {
            let side = if inbound { "peer's" } else { "device's" };
            self.notes.add(&e.name, format!("also matches the {side} source port; the profile allows every source port (wider than the ACE)"));
        }
        let Some(peer) = self.peer(e, inbound) else {
            return;
        };
        let ranges: Vec<Option<(u16, u16)>> = match &e.dst {
            Some(v) => v.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        for ports in ranges {
            let rule = Rule {
                peer: peer.clone(),
                proto: e.proto,
                ports: ports.filter(|&p| p != (0, u16::MAX)),
                icmp_type: e.icmp_type,
                aces: BTreeSet::from([e.name.clone()]),
                acls: BTreeSet::from([e.acl.clone()]),
            };
            let list = if inbound {
                &mut self.inbound
            } else {
                &mut self.egress
            };
            match list.iter_mut().find(|r| r.key() == rule.key()) {
                Some(r) => {
                    r.aces.extend(rule.aces);
                    r.acls.extend(rule.acls);
                }
                None => list.push(rule),
            }
        }
        let fam = if e.v6 { "v6" } else { "v4" };
        if let Peer::Name { .. } = e.peer {
            if !matches!(e.proto, Some(ICMP) | Some(ICMPV6)) {
                let n = self.families.values().map(BTreeSet::len).sum::<usize>();
                self.families
                    .entry(peer)
                    .or_default()
                    .insert((fam, n, e.name.clone()));
            }
        }
    }

    /// A name in the ACLs of one family only: the profile allows the
    /// name's addresses of both.
    fn family_notes(&mut self) {
        let mut one_family = Vec::new();
        for set in self.families.values() {
            let fams: BTreeSet<&str> = set.iter().map(|(f, _, _)| *f).collect();
            if fams.len() == 1 {
                one_family.extend(set.iter().cloned());
            }
        }
        one_family.sort_by_key(|(_, n, _)| *n);
        for (f, _, ace) in one_family {
            let (this, other) = if f == "v4" {
                ("IPv4", "IPv6")
            } else {
                ("IPv6", "IPv4")
            };
            self.notes.add(&ace, format!("names its peer in an {this} ACL only; the profile allows the name's {other} addresses too (wider than the file)"));
        }
    }
}
