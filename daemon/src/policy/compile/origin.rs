//! Where each compiled rule came from: the rule (or building block) as
//! written, with its file, line, column and the vendor document's section,
//! and what it expanded to. Folding merges rules into longest-prefix
//! entries, which no longer say which rule allowed what; `iotfence
//! explain` cites these instead.

use iotfence_common::PortRule;
use ipnet::IpNet;
use serde_saphyr::Location;

use super::Draft;
use crate::diag::Diags;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOrigin {
    /// `egress`, `inbound`, or the building block (`use: dns`).
    pub kind: String,
    pub file: String,
    /// 0 for what is built in.
    pub line: usize,
    pub column: usize,
    /// Where in the vendor document the rule comes from (`section:`).
    pub section: Option<String>,
    pub comment: Option<String>,
    /// What the rule expanded to: destinations (inbound: sources), domain
    /// patterns, and the protocols and ports.
    pub nets: Vec<IpNet>,
    pub domains: Vec<String>,
    pub rules: Vec<PortRule>,
}

impl RuleOrigin {
    /// `file:line:column` (the file alone for what is built in).
    pub fn location(&self) -> String {
        if self.line == 0 {
            return self.file.clone();
        }
        format!("{}:{}:{}", self.file, self.line, self.column)
    }

    pub fn inbound(&self) -> bool {
        self.kind == "inbound"
    }
}

/// What a draft held before a rule was added (see `record`).
#[derive(Clone, Copy)]
pub(super) struct Mark(usize, usize, usize);

pub(super) fn mark(out: &Draft) -> Mark {
    Mark(out.egress.len(), out.inbound.len(), out.domains.len())
}

/// Records what was added to `out` since `since` as one origin.
pub(super) fn record(
    d: &Diags<'_>,
    out: &mut Draft,
    since: Mark,
    kind: &str,
    loc: Option<Location>,
    section: Option<&String>,
    comment: Option<&String>,
) {
    let mut nets = Vec::new();
    let mut rules = Vec::new();
    let mut add = |net: IpNet, rule: PortRule| {
        if !nets.contains(&net) {
            nets.push(net);
        }
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    };
    for (net, rule) in out.egress[since.0..].iter().chain(&out.inbound[since.1..]) {
        add(*net, *rule);
    }
    let mut domains = Vec::new();
    for dr in &out.domains[since.2..] {
        domains.push(dr.pattern.to_string());
        for r in &dr.rules {
            if !rules.contains(r) {
                rules.push(*r);
            }
        }
    }
    if nets.is_empty() && domains.is_empty() {
        return;
    }
    out.origins.push(RuleOrigin {
        kind: kind.to_string(),
        file: d.path().display().to_string(),
        line: loc.map_or(0, |l| l.line() as usize),
        column: loc.map_or(0, |l| l.column() as usize),
        section: section.cloned(),
        comment: comment.cloned(),
        nets,
        domains,
        rules,
    });
}
