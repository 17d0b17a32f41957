//! Decides what one DNS answer teaches: it must answer a query the device
//! sent (transaction id, client port, resolver, question name), the question
//! must match a domain pattern of the device's profile, and only addresses on
//! the CNAME chain that starts at the question count. Pure: no I/O, so it is
//! unit-tested and fuzzed directly.

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::RData,
};
use iotfence_common::PortRule;

use super::pending::{Pending, QueryKey};
use crate::policy::compile::DomainRule;
use crate::policy::pattern::{normalize, Pattern};

/// Longest CNAME chain followed (resolvers cap theirs similarly).
pub const MAX_CHAIN: usize = 16;

iotfence_common::codes! {
    /// Why an answer taught nothing; `name()` values are metric labels.
    pub enum Refusal {
        /// Not a parseable DNS message (or frame).
        Malformed = 0 => "malformed",
        /// A query or other non-response from the resolver's port.
        NotResponse = 1 => "not_response",
        /// No query from this device is waiting for this answer.
        Unsolicited = 2 => "unsolicited",
        /// The answer's question differs from the query's.
        QuestionMismatch = 3 => "question_mismatch",
        /// The question matches no domain pattern of the device's profile.
        NotAllowed = 4 => "not_allowed",
        /// Error code, or no address on the chain.
        NoAddresses = 5 => "no_addresses",
        /// A DNS-over-TCP message continues in another segment.
        TcpPartial = 6 => "tcp_partial",
        /// The name already has the most addresses allowed per name.
        NameCap = 7 => "name_cap",
        /// The device has used its share of the learned map.
        DeviceBudget = 8 => "device_budget",
        /// The learned map is full.
        MapFull = 9 => "map_full",
        /// The address already carries the most (protocol, port) rules.
        AddressRulesFull = 10 => "address_rules_full",
    }
}

/// Who an answer went to and who sent it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub device: u32,
    pub resolver: IpAddr,
    pub client: IpAddr,
    pub client_port: u16,
}

/// What an answer teaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lesson {
    /// The question name (normalized): what every address is credited to.
    pub name: String,
    /// Patterns of the profile the name matched, with their rules.
    pub patterns: Vec<(Pattern, Vec<PortRule>)>,
    /// On-chain addresses and their TTLs.
    pub addrs: Vec<(IpAddr, u32)>,
    /// Address and CNAME records not on the question's chain (ignored).
    pub off_chain: u32,
}

/// The question (normalized name) and id of a query message; `None` when it
/// is not a plain one-question query.
pub fn query_of(msg: &[u8]) -> Option<(u16, String)> {
    let m = Message::from_vec(msg).ok()?;
    if m.metadata.message_type != MessageType::Query || m.queries.len() != 1 {
        return None;
    }
    Some((m.metadata.id, normalize(&m.queries[0].name.to_ascii())))
}

/// A solicited answer's on-chain addresses, whatever the policy says of its
/// name: what violation events cite as "got it from".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The question name (normalized).
    pub name: String,
    /// On-chain addresses and their TTLs (empty unless NOERROR).
    pub addrs: Vec<(IpAddr, u32)>,
    /// Address and CNAME records not on the question's chain (ignored).
    pub off_chain: u32,
    pub no_error: bool,
}

/// Checks and learns: the answer must be solicited, its name allowed, and
/// its addresses on the question's chain.
pub fn examine(
    msg: &[u8],
    route: Route,
    rules: &[DomainRule],
    pending: &mut Pending,
    now_ns: u64,
) -> Result<Lesson, Refusal> {
    examine_with(msg, route, rules, pending, now_ns, |_| {})
}

/// `examine`, showing `solicited` every solicited answer before the policy
/// judges its name (the service records which name gave which address, so
/// a violation event can cite it even for a name the profile refuses).
pub fn examine_with(
    msg: &[u8],
    route: Route,
    rules: &[DomainRule],
    pending: &mut Pending,
    now_ns: u64,
    mut solicited: impl FnMut(&Answer),
) -> Result<Lesson, Refusal> {
    let a = answer(msg, route, pending, now_ns)?;
    solicited(&a);
    lesson(a, rules)
}

/// What the profile's `rules` allow of a solicited answer.
fn lesson(a: Answer, rules: &[DomainRule]) -> Result<Lesson, Refusal> {
    let patterns: Vec<(Pattern, Vec<PortRule>)> = rules
        .iter()
        .filter(|r| r.pattern.matches(&a.name))
        .map(|r| (r.pattern.clone(), r.rules.clone()))
        .collect();
    if patterns.is_empty() {
        return Err(Refusal::NotAllowed);
    }
    if !a.no_error || a.addrs.is_empty() {
        return Err(Refusal::NoAddresses);
    }
    Ok(Lesson {
        name: a.name,
        patterns,
        addrs: a.addrs,
        off_chain: a.off_chain,
    })
}

/// Parses an answer, matches it to its pending query (consuming it) and
/// collects the addresses on the question's CNAME chain.
fn answer(msg: &[u8], route: Route, pending: &mut Pending, now_ns: u64) -> Result<Answer, Refusal> {
    let m = Message::from_vec(msg).map_err(|_| Refusal::Malformed)?;
    if m.metadata.message_type != MessageType::Response {
        return Err(Refusal::NotResponse);
    }
    if m.queries.len() != 1 {
        return Err(Refusal::Malformed);
    }
    let key = QueryKey {
        client: route.client,
        port: route.client_port,
        resolver: route.resolver,
        id: m.metadata.id,
    };
    let waiting = pending.take(&key, now_ns).ok_or(Refusal::Unsolicited)?;
    let name = normalize(&m.queries[0].name.to_ascii());
    if waiting.name != name || waiting.device != route.device {
        return Err(Refusal::QuestionMismatch);
    }
    let no_error = m.metadata.response_code == ResponseCode::NoError;
    // The chain: the question, then each CNAME target in turn.
    let owners: Vec<String> = m
        .answers
        .iter()
        .map(|r| normalize(&r.name.to_ascii()))
        .collect();
    let mut chain = vec![name.clone()];
    let mut on_chain = vec![false; m.answers.len()];
    while chain.len() <= MAX_CHAIN {
        let last = chain.last().unwrap();
        let next = m
            .answers
            .iter()
            .enumerate()
            .find_map(|(i, r)| match &r.data {
                RData::CNAME(c) if !on_chain[i] && &owners[i] == last => Some((i, c)),
                _ => None,
            });
        let Some((i, target)) = next else { break };
        on_chain[i] = true;
        let target = normalize(&target.0.to_ascii());
        if chain.contains(&target) {
            break; // a CNAME loop
        }
        chain.push(target);
    }
    let mut addrs = Vec::new();
    let mut off_chain = 0;
    for (i, r) in m.answers.iter().enumerate() {
        let addr: Option<IpAddr> = match &r.data {
            RData::A(a) => Some(a.0.into()),
            RData::AAAA(a) => Some(a.0.into()),
            RData::CNAME(_) => {
                if !on_chain[i] {
                    off_chain += 1;
                }
                None
            }
            _ => None,
        };
        if let Some(addr) = addr {
            if chain.contains(&owners[i]) {
                if !addrs.iter().any(|(a, _)| *a == addr) {
                    addrs.push((addr, r.ttl));
                }
            } else {
                off_chain += 1;
            }
        }
    }
    if !no_error {
        addrs.clear();
    }
    Ok(Answer {
        name,
        addrs,
        off_chain,
        no_error,
    })
}
