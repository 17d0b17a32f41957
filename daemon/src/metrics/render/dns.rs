//! The DNS learning service's counters, refusals and hold-time histogram.

use prometheus::proto::{Bucket, Histogram, MetricFamily, MetricType};

use super::family::Family;
use crate::{
    dns::{learn::Refusal, stats::HOLD_BUCKETS},
    metrics::Shared,
};

pub(super) fn families(shared: &Shared, out: &mut Vec<MetricFamily>) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &shared.dns;
    let simple: [(&str, &str, MetricType, u64); 7] = [
        (
            "iotfence_dns_queries_total",
            "DNS queries of devices the daemon read.",
            MetricType::COUNTER,
            s.queries.load(Relaxed),
        ),
        (
            "iotfence_dns_answers_total",
            "Held DNS answers the daemon examined.",
            MetricType::COUNTER,
            s.answers.load(Relaxed),
        ),
        (
            "iotfence_dns_learned_total",
            "(address, pattern) credits learned from DNS answers.",
            MetricType::COUNTER,
            s.learned.load(Relaxed),
        ),
        (
            "iotfence_dns_off_chain_records_total",
            "Answer records ignored because they were not on the question's CNAME chain.",
            MetricType::COUNTER,
            s.off_chain_records.load(Relaxed),
        ),
        (
            "iotfence_dns_learned_entries",
            "(device, address) entries learned from DNS and not yet expired.",
            MetricType::GAUGE,
            s.entries.load(Relaxed),
        ),
        (
            "iotfence_dns_pending_queries",
            "Device queries waiting for their answer.",
            MetricType::GAUGE,
            s.pending.load(Relaxed),
        ),
        (
            "iotfence_dns_attributed_addresses",
            "(device, address) pairs remembered with the name they were resolved from, for events.",
            MetricType::GAUGE,
            shared.names.len() as u64,
        ),
    ];
    for (name, help, kind, v) in simple {
        let mut f = Family::new(name, help, kind);
        f.add(&[], v as f64);
        f.done(out);
    }
    let mut refused = Family::counter(
        "iotfence_dns_refused_total",
        "DNS answers (or addresses of them) not learned, by reason.",
    );
    for r in Refusal::ALL {
        refused.add(&[("reason", r.name())], s.refused(r) as f64);
    }
    refused.done(out);
    let mut released = Family::counter(
        "iotfence_dns_released_total",
        "Held DNS answers sent on to the device after learning, by result.",
    );
    released
        .add(&[("result", "ok")], s.reinjected.load(Relaxed) as f64)
        .add(
            &[("result", "failed")],
            s.reinject_failed.load(Relaxed) as f64,
        );
    released.done(out);

    let mut h = Histogram::default();
    let mut cumulative = 0;
    let buckets = HOLD_BUCKETS
        .iter()
        .zip(&s.hold_buckets)
        .map(|(le, n)| {
            cumulative += n.load(Relaxed);
            let mut b = Bucket::default();
            b.set_upper_bound(*le);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    h.set_bucket(buckets);
    // A sample bumps its bucket before the count: never report fewer
    // samples than the buckets hold.
    h.set_sample_count(s.hold_count.load(Relaxed).max(cumulative));
    h.set_sample_sum(s.hold_sum_ns.load(Relaxed) as f64 / 1e9);
    let mut f = Family::new(
        "iotfence_dns_hold_seconds",
        "Time a DNS answer was held: from the kernel taking it to its release after learning.",
        MetricType::HISTOGRAM,
    );
    let mut m = Family::metric(&[]);
    m.set_histogram(h);
    f.0.mut_metric().push(m);
    f.done(out);
}
