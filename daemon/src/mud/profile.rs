//! The vendor profile `mud import` writes: one profile with the site
//! variables it requires, before it is rendered as YAML (`yaml`).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub source: String,
    /// Built-in blocks: dhcp, dns, ntp.
    pub uses: Vec<&'static str>,
    pub egress: Vec<Rule>,
    pub inbound: Vec<Rule>,
    pub limitations: Vec<String>,
    pub requires: BTreeMap<String, Require>,
    /// ACEs read as the answers of flows other ACEs open: the datapath
    /// passes those on the flow, so they need no rule of their own.
    pub answers: Vec<String>,
    /// The MUD file's `mud-url`.
    pub mud_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Require {
    pub description: String,
    /// Used as an inbound source: addresses and CIDRs only.
    pub networks: bool,
}

/// One rule: a single peer, protocol and port range (or ICMP type), as
/// one MUD ACE holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// A name, `*.name`, an address or CIDR, or `$variable`.
    pub peer: String,
    /// None: every protocol.
    pub proto: Option<u8>,
    pub ports: Option<(u16, u16)>,
    pub icmp_type: Option<u8>,
    /// The ACEs it comes from and their ACLs.
    pub aces: BTreeSet<String>,
    pub acls: BTreeSet<String>,
}

/// Peer, protocol, port range and ICMP type.
pub type RuleKey<'a> = (&'a str, Option<u8>, Option<(u16, u16)>, Option<u8>);

impl Rule {
    /// What the rule allows, without where it comes from.
    pub fn key(&self) -> RuleKey<'_> {
        (&self.peer, self.proto, self.ports, self.icmp_type)
    }
}
