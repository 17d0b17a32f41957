//! The metric families of one scrape. Kernel counters are read from the
//! pinned per-CPU maps now (summed over CPUs), never cached, so a scrape
//! is as fresh as the datapath. Label values are bounded: device and
//! profile names from the policy, fixed verdict/reason/protocol names, and
//! ports (bounded by the violation map's LRU capacity). Addresses and
//! domains never become labels; they go into violation events.

use iotfence_common::{
    consts::{self},
    reason::{counter_index, REASONS, VERDICTS},
    Global, Verdict,
};
use prometheus::proto::{
    Bucket, Counter as PCounter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};

use super::Shared;
use crate::{
    dns::{learn::Refusal, stats::HOLD_BUCKETS},
    kernel::{
        counters::{Counters, Totals},
        mapstat,
    },
};

/// One metric family under construction.
struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut f = MetricFamily::default();
        f.set_name(name.into());
        f.set_help(help.into());
        f.set_field_type(kind);
        Self(f)
    }

    fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::COUNTER)
    }

    fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::GAUGE)
    }

    fn metric(labels: &[(&str, &str)]) -> Metric {
        Metric::from_label(
            labels
                .iter()
                .map(|(k, v)| {
                    let mut l = LabelPair::default();
                    l.set_name((*k).into());
                    l.set_value((*v).into());
                    l
                })
                .collect(),
        )
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let mut m = Self::metric(labels);
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut c = PCounter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
        self
    }

    fn done(self, out: &mut Vec<MetricFamily>) {
        if !self.0.get_metric().is_empty() {
            out.push(self.0);
        }
    }
}

/// Every (verdict, reason) pair the datapath can count.
pub fn slots() -> impl Iterator<Item = (Verdict, iotfence_common::Reason)> {
    VERDICTS.into_iter().flat_map(|v| {
        REASONS
            .into_iter()
            .filter(move |r| r.allows() == (v == Verdict::Allowed))
            .map(move |r| (v, r))
    })
}

/// The families of one scrape (the caller adds the process collector's).
pub fn families(shared: &Shared, kernel: &Counters) -> anyhow::Result<Vec<MetricFamily>> {
    let mut out = Vec::new();
    let status = {
        let s = shared.lock();
        (
            s.devices.clone(),
            s.profiles,
            s.generation,
            s.reloads_ok,
            s.reloads_failed_by,
            s.last_success,
            s.attached.clone(),
            s.missing.clone(),
            s.event_write_errors,
        )
    };
    let (devices, profiles, generation, ok, failed, last_success, attached, missing, write_errors) =
        status;

    let mut info = Family::gauge(
        "iotfence_device_info",
        "A device of the policy (device \"unknown\": the default profile); always 1.",
    );
    let mut packets = Family::counter(
        "iotfence_packets_total",
        "Packets sent by devices into the protected interface, by verdict and reason.",
    );
    let mut bytes = Family::counter(
        "iotfence_bytes_total",
        "Bytes (frame length) sent by devices into the protected interface, by verdict and reason.",
    );
    for d in &devices {
        info.add(
            &[
                ("device", &d.name),
                ("profile", &d.profile),
                ("mode", d.mode),
            ],
            1.0,
        );
        if d.id >= consts::MAX_DEVICES {
            continue;
        }
        for (v, r) in slots() {
            let Totals {
                packets: p,
                bytes: b,
            } = kernel.counter_sum(counter_index(d.id, v, r))?;
            if p == 0 {
                continue;
            }
            let labels = [
                ("device", d.name.as_str()),
                ("profile", d.profile.as_str()),
                ("verdict", v.name()),
                ("reason", r.name()),
            ];
            packets.add(&labels, p as f64);
            bytes.add(&labels, b as f64);
        }
    }
    info.done(&mut out);
    packets.done(&mut out);
    bytes.done(&mut out);

    let mut violations = Family::counter(
        "iotfence_violation_packets_total",
        "Packets a profile does not allow (dropped, or passed in audit mode), by protocol and destination port (ICMP: type).",
    );
    let read = kernel.violations()?;
    let counts = super::monotonic(
        &mut shared.lock().violations_seen,
        read.into_iter().map(|(k, t)| (k, t.packets)),
    );
    for (k, n) in counts {
        let Some(d) = devices.iter().find(|d| d.id == k.device) else {
            continue;
        };
        let verdict = if k.verdict == Verdict::Audited as u8 {
            "audited"
        } else {
            "dropped"
        };
        violations.add(
            &[
                ("device", &d.name),
                ("profile", &d.profile),
                ("verdict", verdict),
                ("protocol", &crate::events::protocol_label(k.proto)),
                ("port", &k.port.to_string()),
            ],
            n as f64,
        );
    }
    violations.done(&mut out);

    kernel_globals(kernel, &mut out)?;
    dns(shared, &mut out);

    let mut entries = Family::gauge(
        "iotfence_map_entries",
        "Entries in each pinned hash or LPM map, counted in the kernel.",
    );
    let mut capacity = Family::gauge(
        "iotfence_map_max_entries",
        "Capacity of each pinned hash or LPM map.",
    );
    for u in mapstat::pinned(&shared.pin_dir)? {
        entries.add(&[("map", u.map)], u.entries as f64);
        capacity.add(&[("map", u.map)], u.capacity as f64);
    }
    entries.done(&mut out);
    capacity.done(&mut out);

    let single = |out: &mut Vec<MetricFamily>, f: fn(&str, &str) -> Family, name, help, v: f64| {
        let mut fam = f(name, help);
        fam.add(&[], v);
        fam.done(out);
    };
    single(
        &mut out,
        Family::gauge,
        "iotfence_policy_generation",
        "Policies applied since the daemon started (1: the startup policy).",
        generation as f64,
    );
    let mut reloads = Family::counter(
        "iotfence_policy_reloads_total",
        "Policy reloads (SIGHUP or file change), by result: success, rejected (invalid policy) or apply_failed (the kernel refused it); a failed one leaves the running policy in force.",
    );
    reloads.add(&[("result", "success")], ok as f64);
    for kind in super::ReloadFailure::ALL {
        reloads.add(&[("result", kind.name())], failed[kind as usize] as f64);
    }
    reloads.done(&mut out);
    single(
        &mut out,
        Family::gauge,
        "iotfence_policy_last_success_timestamp_seconds",
        "Unix time the running policy was applied.",
        last_success,
    );
    single(
        &mut out,
        Family::gauge,
        "iotfence_policy_devices",
        "Devices in the running policy.",
        devices.len().saturating_sub(1) as f64,
    );
    single(
        &mut out,
        Family::gauge,
        "iotfence_policy_profiles",
        "Profiles in the running policy.",
        profiles as f64,
    );
    single(
        &mut out,
        Family::counter,
        "iotfence_event_write_errors_total",
        "Violation events the events file could not take.",
        write_errors as f64,
    );
    let mut hooks = Family::gauge(
        "iotfence_attached_info",
        "An interface the datapath is attached to, with its hook; always 1.",
    );
    for (iface, hook) in &attached {
        hooks.add(&[("interface", iface), ("hook", hook)], 1.0);
    }
    hooks.done(&mut out);
    let mut gone = Family::gauge(
        "iotfence_interface_missing",
        "A configured interface that does not exist now, so nothing is enforced on it; re-attached when it appears. Always 1.",
    );
    for iface in &missing {
        gone.add(&[("interface", iface)], 1.0);
    }
    gone.done(&mut out);
    let mut build = Family::gauge(
        "iotfence_build_info",
        "Version of the running daemon and of its map layout; always 1.",
    );
    build.add(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("map_version", &consts::MAP_VERSION.to_string()),
        ],
        1.0,
    );
    build.done(&mut out);
    Ok(out)
}

/// Every `Global` counter, in its family (families in first-seen order).
fn kernel_globals(kernel: &Counters, out: &mut Vec<MetricFamily>) -> anyhow::Result<()> {
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
    Ok(())
}

fn dns(shared: &Shared, out: &mut Vec<MetricFamily>) {
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
