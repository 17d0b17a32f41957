//! `cargo xtask bench [--short]`, part 1: datapath cost per packet with
//! BPF_PROG_TEST_RUN. The fixture table that drives the datapath tests is
//! replayed in order (so flows and learned entries exist as in the tests);
//! each XDP fixture is then timed in the kernel, interleaved with an empty
//! XDP program on the same packet (the floor), and the median of several
//! rounds is kept. Results: a Markdown table and JSON under
//! `target/bench/`. In short mode the run fails when the ratio of
//! iotfence's cost to the floor passes the threshold in
//! `bench/thresholds.json` (never on an absolute time).

use std::{path::PathBuf, time::Instant};

use iotfence_tests::{
    fixtures::{self, Step},
    floor,
    harness::{Harness, Hook},
};
use serde_json::json;

struct Row {
    name: &'static str,
    verdict: String,
    ns: u64,
    floor_ns: u64,
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let short = std::env::args().any(|a| a == "--short");
    let (repeat, rounds) = if short { (20_000, 5) } else { (200_000, 9) };
    // `--only TEXT`: time only the fixtures whose name contains TEXT (for
    // profiling one path); the table still runs in full for its state.
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out_dir = repo.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let started = Instant::now();

    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
    let empty = floor::empty_xdp()?;
    let mut rows = Vec::new();
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
                // Once as the test does (state as in the table), then timed:
                // the timed runs see the state the first one left (a SYN
                // that opened a flow is timed as a flow hit).
                h.run(Hook::Xdp, &packet);
                if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
                    continue;
                }
                let mut ours = Vec::new();
                let mut base = Vec::new();
                for _ in 0..rounds {
                    ours.push(h.time(Hook::Xdp, &packet, repeat).1);
                    base.push(floor::time(&empty, &packet, repeat)?.1);
                }
                rows.push(Row {
                    name,
                    verdict: format!("{} ({})", expect.verdict.name(), expect.reason.name()),
                    ns: median(ours),
                    floor_ns: median(base),
                });
            }
        }
    }

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
    print!("{md}");
    std::fs::write(out_dir.join("datapath.md"), &md)?;
    let doc = json!({
        "repeat": repeat,
        "rounds": rounds,
        "ratio_to_floor": ratio,
        "fixtures": rows.iter().map(|r| json!({
            "name": r.name, "verdict": r.verdict, "ns": r.ns, "floor_ns": r.floor_ns,
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out_dir.join("datapath.json"),
        serde_json::to_string_pretty(&doc)?,
    )?;

    let thresholds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        repo.join("bench/thresholds.json"),
    )?)?;
    let max = thresholds["datapath_ratio_to_floor_max"]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("bench/thresholds.json: datapath_ratio_to_floor_max"))?;
    if ratio > max {
        anyhow::bail!(
            "datapath regression: iotfence costs {ratio:.2}x the empty program, threshold {max}"
        );
    }
    println!("ratio {ratio:.2} within the threshold {max} (bench/thresholds.json)");
    Ok(())
}
