//! Part 1: datapath cost per packet. The fixture table that drives the
//! datapath tests is replayed in order (so flows and learned entries exist
//! as in the tests); each XDP fixture is then timed in the kernel,
//! interleaved with an empty XDP program on the same packet (the floor), and
//! the median of several rounds is kept.

use std::time::Instant;

use iotfence_tests::{
    fixtures::{self, Expect, Step},
    floor,
    harness::{Harness, Hook},
};
use serde_json::json;

use crate::{guard, median, save, Opts};

struct Row {
    name: &'static str,
    verdict: String,
    ns: u64,
    floor_ns: u64,
}

/// Replays the fixture table in order, as the datapath tests do, and hands
/// every judged fixture to `timed` once its first run has left its state
/// (a SYN that opened a flow is then timed as a flow hit).
pub fn replay(
    h: &mut Harness,
    mut timed: impl FnMut(&Harness, &'static str, &[u8], &Expect) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for step in fixtures::table() {
        match step {
            Step::Observe { packet, .. } => {
                h.run(Hook::TcEgress, &packet);
            }
            Step::Learn {
                device,
                addr,
                rule,
                ttl_secs,
            } => h.learn(device, addr, rule, ttl_secs),
            Step::Judge {
                name,
                packet,
                expect,
                ..
            } => {
                h.run(Hook::Xdp, &packet);
                timed(h, name, &packet, &expect)?;
            }
        }
    }
    Ok(())
}

/// Part 1: datapath cost per packet with BPF_PROG_TEST_RUN.
pub fn run(o: &Opts) -> anyhow::Result<()> {
    let (repeat, rounds) = if o.short { (20_000, 5) } else { (200_000, 9) };
    let only = &o.only;
    let started = Instant::now();

    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
    let empty = floor::empty_xdp()?;
    let mut rows = Vec::new();
    replay(&mut h, |h, name, packet, expect| {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            return Ok(());
        }
        let mut ours = Vec::new();
        let mut base = Vec::new();
        for _ in 0..rounds {
            ours.push(h.time(Hook::Xdp, packet, repeat).1);
            base.push(floor::time(&empty, packet, repeat)?.1);
        }
        rows.push(Row {
            name,
            verdict: format!("{} ({})", expect.verdict.name(), expect.reason.name()),
            ns: median(ours),
            floor_ns: median(base),
        });
        Ok(())
    })?;

    let total: u64 = rows.iter().map(|r| r.ns).sum();
    let total_floor: u64 = rows.iter().map(|r| r.floor_ns).sum();
    let ratio = total as f64 / total_floor.max(1) as f64;
    let mut md = format!(
        "# Datapath cost per packet (BPF_PROG_TEST_RUN, XDP)\n\n\
         {} fixtures, median of {rounds} rounds of {repeat} in-kernel runs, \
         interleaved with an empty XDP program on the same packet (floor).\n\n\
         | fixture | verdict | iotfence ns | floor ns | added ns |\n|---|---|---:|---:|---:|\n",
        rows.len()
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name,
            r.verdict,
            r.ns,
            r.floor_ns,
            r.ns as i64 - r.floor_ns as i64
        );
    }
    md += &format!(
        "\nMean: iotfence {:.1} ns, floor {:.1} ns, ratio {ratio:.2}; run took {:.1} s.\n",
        total as f64 / rows.len() as f64,
        total_floor as f64 / rows.len() as f64,
        started.elapsed().as_secs_f64()
    );
    let doc = json!({
        "repeat": repeat,
        "rounds": rounds,
        "ratio_to_floor": ratio,
        "fixtures": rows.iter().map(|r| json!({
            "name": r.name, "verdict": r.verdict, "ns": r.ns, "floor_ns": r.floor_ns,
        })).collect::<Vec<_>>(),
    });
    save(o, "datapath", &md, &doc)?;
    guard(
        o,
        "datapath_ratio_to_floor_max",
        ratio,
        "datapath: iotfence's cost over the empty program's",
    )
}
