//! Site variables: what is set, what vendor files require, values checked
//! where they are written, and `$name` references expanded in rule lists.

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use crate::{
    diag::{Diagnostic, Diags},
    policy::{
        doc::{OneOrMany, RequireDoc},
        pattern::Pattern,
        sources::Source,
    },
};

use super::addr::is_name;
use super::addr::parse_net;

/// Site variables and what vendor files require of them.
pub(super) struct Vars<'a> {
    pub(super) set: BTreeMap<&'a str, &'a Spanned<OneOrMany<String>>>,
    pub(super) required: BTreeMap<&'a str, &'a Spanned<RequireDoc>>,
}

impl Vars<'_> {
    pub(super) fn hint(&self, name: &str) -> String {
        let what = self
            .required
            .get(name)
            .and_then(|r| r.value.description.as_deref())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        format!("set `{name}`{what} under `vars:` in the site policy")
    }
}

pub(super) fn is_networks(r: &RequireDoc) -> bool {
    r.kind.as_ref().is_some_and(|k| k.value == "networks")
}

/// Every variable value is an address, CIDR or (for `hosts` variables) a
/// domain pattern; checked once, where it is written.
pub(super) fn check_vars(sources: &[&Source], vars: &Vars<'_>, all: &mut Vec<Diagnostic>) {
    for src in sources {
        let mut d = Diags::new(&src.path);
        for (name, v) in &src.doc.vars {
            if !std::ptr::eq(vars.set[name.as_str()], v) {
                continue;
            }
            let networks = vars
                .required
                .get(name.as_str())
                .is_some_and(|r| is_networks(&r.value));
            let items = v.value.located(v.referenced);
            if items.is_empty() {
                d.on(v, format!("variable `{name}` is empty"), Some("an empty list would silently allow nothing; remove the profiles that need it instead"));
            }
            for (loc, text) in items {
                if text.starts_with('$') {
                    d.at(loc, "a variable's values cannot name other variables", None);
                } else if is_name(text) {
                    if networks {
                        d.at(
                            loc,
                            format!("`{name}` holds networks, and `{text}` is a name"),
                            Some("write addresses or CIDRs"),
                        );
                    } else if let Err(msg) = Pattern::parse(text) {
                        d.at(loc, msg, None);
                    }
                } else {
                    parse_net(&mut d, loc, text);
                }
            }
        }
        all.extend(d.list);
    }
}

/// The items of a `to:` / `from:` list with `$variables` replaced by their
/// values (located at the reference). An unset variable is an error that
/// names it: never a silently empty allowlist.
pub(super) fn expand<'v>(
    d: &mut Diags<'_>,
    list: &'v Spanned<OneOrMany<String>>,
    vars: &Vars<'v>,
) -> Vec<(Location, &'v str)> {
    let mut out = Vec::new();
    for (loc, text) in list.value.located(list.referenced) {
        let Some(name) = text.trim().strip_prefix('$') else {
            out.push((loc, text.as_str()));
            continue;
        };
        match vars.set.get(name) {
            Some(v) => out.extend(
                v.value
                    .located(v.referenced)
                    .into_iter()
                    .map(|(_, t)| (loc, t.as_str())),
            ),
            None => d.at(
                loc,
                format!("variable `${name}` is not set"),
                Some(&vars.hint(name)),
            ),
        }
    }
    out
}
