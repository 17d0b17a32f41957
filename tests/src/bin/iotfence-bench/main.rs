//! `cargo xtask bench [--short] [--part datapath|sweep|live|dns|control] [--only TEXT]`:
//! 1. datapath cost per packet with BPF_PROG_TEST_RUN against an empty
//!    program (`datapath.rs`);
//!    and as devices and learned entries grow (`sweep.rs`);
//! 2. live throughput on a veth path against nftables (`live.rs`);
//! 3. DNS learning against dnsmasq `--nftset` (`dns.rs`);
//! 4. control-plane costs: policy apply and reload, kernel memory, scrapes
//!    (`control.rs`).
//!
//! Results: Markdown and JSON under `target/bench/`. Every part compares
//! ratios measured side by side in the same run; in short mode (CI) the run
//! fails when a ratio passes its threshold in `bench/thresholds.json`,
//! never on an absolute time. Method and numbers: BENCHMARKS.md.

use std::path::PathBuf;

mod control;
mod datapath;
mod dns;
mod live;
mod loaded;
mod sweep;
mod veth;

pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub struct Opts {
    pub short: bool,
    /// `--only TEXT`: time only the fixtures whose name contains TEXT (for
    /// profiling one path); the table still runs in full for its state.
    pub only: Option<String>,
    /// `--part datapath|sweep|live|dns|control`: run one part only.
    part: Option<String>,
    pub out_dir: PathBuf,
    thresholds: serde_json::Value,
}

fn threshold(o: &Opts, key: &str) -> anyhow::Result<f64> {
    o.thresholds[key]
        .as_f64()
        .ok_or_else(|| anyhow::anyhow!("bench/thresholds.json: {key} is missing"))
}

/// Writes a part's results: `<part>.md` (also printed) and `<part>.json`.
pub fn save(o: &Opts, part: &str, md: &str, doc: &serde_json::Value) -> anyhow::Result<()> {
    print!("{md}");
    std::fs::write(o.out_dir.join(format!("{part}.md")), md)?;
    std::fs::write(
        o.out_dir.join(format!("{part}.json")),
        serde_json::to_string_pretty(doc)?,
    )?;
    Ok(())
}

/// Fails the run when `got` (what `what` says) passes the threshold `key`
/// of bench/thresholds.json: a ceiling, or a floor for keys ending `_min`.
pub fn guard(o: &Opts, key: &str, got: f64, what: &str) -> anyhow::Result<()> {
    let limit = threshold(o, key)?;
    let passed = if key.ends_with("_min") {
        got < limit
    } else {
        got > limit
    };
    anyhow::ensure!(
        !passed,
        "regression: {what} {got:.2}, threshold {key} = {limit} (bench/thresholds.json)"
    );
    println!("{what} {got:.2} within the threshold {key} = {limit} (bench/thresholds.json)");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Opts {
        short: args.iter().any(|a| a == "--short"),
        only: value("--only"),
        part: value("--part"),
        out_dir: repo.join("target/bench"),
        thresholds: serde_json::from_str(&std::fs::read_to_string(
            repo.join("bench/thresholds.json"),
        )?)?,
    };
    std::fs::create_dir_all(&o.out_dir)?;
    let wants = |p: &str| o.part.as_deref().is_none_or(|x| x == p);
    type Part = fn(&Opts) -> anyhow::Result<()>;
    let parts: [(&str, Part); 5] = [
        ("datapath", datapath::run),
        ("sweep", sweep::run),
        ("live", live::run),
        ("control", control::run),
        ("dns", dns::run),
    ];
    let mut failures = Vec::new();
    for (name, run) in parts {
        if wants(name) {
            if let Err(e) = run(&o) {
                failures.push(format!("{e:#}"));
            }
        }
    }
    if !failures.is_empty() {
        anyhow::bail!("{}", failures.join("\n"));
    }
    Ok(())
}
