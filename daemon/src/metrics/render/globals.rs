//! The kernel's global counters (`Global`), each in its family, and the
//! DNS redirect's.

use iotfence_common::Global;
use prometheus::proto::MetricFamily;

use super::family::Family;
use crate::kernel::counters::Counters;

/// Every `Global` counter, in its family (families in first-seen order).
pub(super) fn families(kernel: &Counters, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
    let mut families: Vec<(&'static str, Family)> = Vec::new();
    for g in Global::ALL {
        let (family, label) = g.metric();
        let at = match families.iter().position(|(n, _)| *n == family.name) {
            Some(i) => i,
            None => {
                families.push((family.name, Family::counter(family.name, family.help)));
                families.len() - 1
            }
        };
        let labels: &[(&str, &str)] = match &label {
            Some(l) => std::slice::from_ref(l),
            None => &[],
        };
        families[at].1.add(labels, kernel.global(g)? as f64);
    }
    for (_, f) in families {
        f.done(out);
    }
    let (queries, answers) = kernel.redirected()?;
    let mut f = Family::counter(
        "iotfence_dns_redirected_total",
        "dns.redirect: DNS queries to other resolvers sent to the configured one (query), and the answers to them given the asked resolver's address back (answer).",
    );
    f.add(&[("direction", "query")], queries as f64);
    f.add(&[("direction", "answer")], answers as f64);
    f.done(out);
    Ok(())
}
