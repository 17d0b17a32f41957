//! The metric families of one scrape. Kernel counters are read from the
//! pinned per-CPU maps now (summed over CPUs), never cached, so a scrape
//! is as fresh as the datapath. Label values are bounded: device and
//! profile names from the policy, fixed verdict/reason/protocol names, and
//! ports (bounded by the violation map's LRU capacity). Addresses and
//! domains never become labels; they go into violation events.

use iotfence_common::{
    consts,
    reason::{counter_index, REASONS, VERDICTS},
    Verdict,
};
use prometheus::proto::MetricFamily;

mod dns;
mod family;
mod globals;

use family::Family;

use super::Shared;
use crate::kernel::{
    counters::{Counters, Totals},
    mapstat,
};

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
        if d.id >= kernel.devices() {
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

    globals::families(kernel, &mut out)?;
    dns::families(shared, &mut out);

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
        "iotfence_ready",
        "1 when /readyz says ready: a policy applied and every configured interface attached; else 0.",
        if shared.ready() { 1.0 } else { 0.0 },
    );
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
        "Each configured interface: 1 while it does not exist, so nothing is enforced on it (attached when it appears), else 0.",
    );
    // Every configured interface has a series, 0 while attached: an alert
    // on `== 1` then has a series to watch from the start.
    for (iface, _) in &attached {
        gone.add(&[("interface", iface)], 0.0);
    }
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
