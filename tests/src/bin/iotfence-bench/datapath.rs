//! Part 1: datapath cost per packet. The fixture table that drives the
//! datapath tests is replayed in order (so flows and learned entries exist
//! as in the tests); each XDP fixture is then timed in the kernel,
//! interleaved with an empty XDP program (the floor) and the reference
//! allowlist (`iotfence_tests::reference`) on the same packet, and the
//! median of several rounds is kept. The gate is iotfence's cost over the
//! floor relative to the reference's: a ratio of two programs doing the
//! same kind of work, which holds across CPUs where a ratio to the floor
//! does not.

use std::time::Instant;

use iotfence_tests::{
    fixtures::{self, run, Expect},
    floor,
    harness::{Harness, Hook},
    reference::Reference,
};
use serde_json::json;

use crate::{guard, median, save, Opts};

struct Row {
    name: &'static str,
    verdict: String,
    ns: u64,
    reference_ns: u64,
    floor_ns: u64,
}

/// Replays the fixture table (`fixtures::run::replay`) through XDP and hands every
/// judged fixture to `timed` once its first run has left its state (a SYN
/// that opened a flow is then timed as a flow hit).
pub fn replay(
    h: &mut Harness,
    mut timed: impl FnMut(&Harness, &'static str, &[u8], &Expect) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    run::replay(h, Hook::Xdp, |h, name, packet, expect| {
        h.run(Hook::Xdp, packet);
        timed(h, name, packet, expect)
    })
}

/// Part 1: datapath cost per packet with BPF_PROG_TEST_RUN.
pub fn run(o: &Opts) -> anyhow::Result<()> {
    let (repeat, rounds) = if o.short { (20_000, 5) } else { (200_000, 9) };
    let only = &o.only;
    let started = Instant::now();

    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_BENCH);
    let empty = floor::empty_xdp()?;
    // The reference passes what the table allows (and drops the rest), so
    // its lookups hit and miss where iotfence's do.
    let reference = Reference::load()?;
    for (_, packet, expect) in run::judged() {
        if expect.verdict == iotfence_common::Verdict::Allowed {
            reference.allow(&packet)?;
        }
    }
    let mut rows = Vec::new();
    replay(&mut h, |h, name, packet, expect| {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            return Ok(());
        }
        let mut ours = Vec::new();
        let mut refs = Vec::new();
        let mut base = Vec::new();
        for _ in 0..rounds {
            ours.push(h.time(Hook::Xdp, packet, repeat).1);
            refs.push(reference.time(packet, repeat)?.1);
            base.push(floor::time(&empty, packet, repeat)?.1);
        }
        rows.push(Row {
            name,
            verdict: format!("{} ({})", expect.verdict.name(), expect.reason.name()),
            ns: median(ours),
            reference_ns: median(refs),
            floor_ns: median(base),
        });
        Ok(())
    })?;

    let total: u64 = rows.iter().map(|r| r.ns).sum();
    let total_ref: u64 = rows.iter().map(|r| r.reference_ns).sum();
    let total_floor: u64 = rows.iter().map(|r| r.floor_ns).sum();
    let ratio = total as f64 / total_floor.max(1) as f64;
    let added = total as f64 - total_floor as f64;
    let ref_added = (total_ref as f64 - total_floor as f64).max(1.0);
    let over_reference = added / ref_added;
    let n = rows.len() as f64;
    let mut md = format!(
        "# Datapath cost per packet (BPF_PROG_TEST_RUN, XDP)\n\n\
         {} fixtures on {}, median of {rounds} rounds of {repeat} in-kernel runs, \
         interleaved with an empty XDP program (floor) and the reference allowlist \
         (MAC → profile, then (profile, protocol, port, destination) hash lookups) \
         on the same packet.\n\n\
         | fixture | verdict | iotfence ns | reference ns | floor ns | added ns | reference added ns |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
        rows.len(),
        cpu_model()
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.verdict,
            r.ns,
            r.reference_ns,
            r.floor_ns,
            r.ns as i64 - r.floor_ns as i64,
            r.reference_ns as i64 - r.floor_ns as i64
        );
    }
    md += &format!(
        "\nMean: iotfence {:.1} ns, reference {:.1} ns, floor {:.1} ns; \
         added over the floor: iotfence {:.1} ns, reference {:.1} ns, \
         ratio {over_reference:.2} (ratio to the floor alone {ratio:.2}); run took {:.1} s.\n",
        total as f64 / n,
        total_ref as f64 / n,
        total_floor as f64 / n,
        added / n,
        ref_added / n,
        started.elapsed().as_secs_f64()
    );
    let doc = json!({
        "cpu": cpu_model(),
        "repeat": repeat,
        "rounds": rounds,
        "added_over_reference": over_reference,
        "ratio_to_floor": ratio,
        "fixtures": rows.iter().map(|r| json!({
            "name": r.name, "verdict": r.verdict, "ns": r.ns,
            "reference_ns": r.reference_ns, "floor_ns": r.floor_ns,
        })).collect::<Vec<_>>(),
    });
    save(o, "datapath", &md, &doc)?;
    guard(
        o,
        "datapath_added_over_reference_max",
        over_reference,
        "datapath: iotfence's added cost over the reference allowlist's",
    )
}

/// The CPU's model name (/proc/cpuinfo), for the record.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "an unknown CPU".into())
}
