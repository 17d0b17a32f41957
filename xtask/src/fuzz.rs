//! `cargo xtask fuzz`: each cargo-fuzz target (libFuzzer, AddressSanitizer)
//! for a bounded time from the committed corpus in `fuzz/corpus/<target>`.
//! New inputs go to `target/fuzz/corpus/<target>` (the committed corpus
//! stays as it is unless `--cmin` folds them in); a crash or a kernel/model
//! disagreement fails the command and leaves the input under
//! `fuzz/artifacts/<target>/`.
//!
//! cargo-fuzz wants a nightly toolchain for its `-Z` flags; the stable one
//! builds it with RUSTC_BOOTSTRAP=1 (its sanitizer runtimes ship with it).

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context};

use crate::{root, step};

pub const TARGETS: [&str; 3] = ["dns_learn", "policy", "datapath"];

/// A single input that runs this long is a hang, reported as a failure.
const INPUT_TIMEOUT_SECS: u32 = 20;

fn cargo_fuzz(sub: &str, target: &str) -> Command {
    let root = root();
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(&root)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", sub, "--fuzz-dir", "fuzz", "--target-dir"])
        .arg(root.join("target/fuzz"));
    if !target.is_empty() {
        c.arg(target);
    }
    c
}

/// Runs `targets` (all when empty) for `seconds` each; with `cmin`, folds
/// what they found into the committed corpus and minimizes it.
pub fn run(seconds: u64, targets: &[String], cmin: bool) -> anyhow::Result<()> {
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!("no fuzz target `{t}` (there are: {})", TARGETS.join(", "));
            }
        }
        targets.iter().map(String::as_str).collect()
    };
    if crate::setup::cargo_fuzz_version().as_deref() != Some(crate::setup::CARGO_FUZZ_VERSION) {
        bail!(
            "cargo-fuzz {} is not installed: run `cargo xtask setup`",
            crate::setup::CARGO_FUZZ_VERSION
        );
    }
    step("building the fuzz targets (cargo fuzz build, AddressSanitizer)");
    status(&mut cargo_fuzz("build", ""))?;
    let root = root();
    let mut report = Vec::new();
    for t in &targets {
        let committed = root.join("fuzz/corpus").join(t);
        let inputs = fs::read_dir(&committed)
            .with_context(|| format!("the committed corpus {}", committed.display()))?
            .count();
        if inputs == 0 {
            bail!("the committed corpus {} is empty", committed.display());
        }
        let scratch = root.join("target/fuzz/corpus").join(t);
        fs::create_dir_all(&scratch)?;
        step(&format!(
            "fuzzing {t} for {seconds} s from {inputs} committed inputs"
        ));
        report.push((t.to_string(), campaign(t, &scratch, &committed, seconds)?));
        if cmin {
            minimize(t, &scratch, &committed)?;
        }
    }
    for (t, stats) in &report {
        println!("fuzz {t}: {stats}");
    }
    Ok(())
}

/// One bounded libFuzzer run; returns its final stats line.
fn campaign(
    target: &str,
    scratch: &Path,
    committed: &Path,
    seconds: u64,
) -> anyhow::Result<String> {
    let root = root();
    let logs = root.join("target/fuzz/logs");
    fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{target}.log"));
    let mut log = fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = cargo_fuzz("run", target)
        .arg(scratch)
        .arg(committed)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo fuzz")?;
    let mut last = String::new();
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line?;
        writeln!(log, "{line}")?;
        // libFuzzer's progress lines start with `#<runs>`.
        let progress = line
            .strip_prefix('#')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
        if progress && (line.contains("INITED") || line.contains("DONE")) {
            eprintln!("    {line}");
        }
        if progress {
            last = line.clone();
        }
        tail.push(line);
        if tail.len() > 80 {
            tail.remove(0);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        for l in &tail {
            eprintln!("{l}");
        }
        bail!(
            "fuzz target {target} failed ({status}) after {:?}: the input is under fuzz/artifacts/{target}/, the log in {}",
            started.elapsed(),
            log_path.display()
        );
    }
    if !last.contains("DONE") {
        bail!(
            "fuzz target {target} ended without its final stats (log: {})",
            log_path.display()
        );
    }
    Ok(format!("{last} in {:?}", started.elapsed()))
}

/// Copies what the run found into the committed corpus, then keeps only
/// the inputs that add coverage (`cargo fuzz cmin`).
fn minimize(target: &str, scratch: &Path, committed: &Path) -> anyhow::Result<()> {
    for e in fs::read_dir(scratch)? {
        let p = e?.path();
        fs::copy(&p, committed.join(p.file_name().unwrap()))?;
    }
    step(&format!("minimizing fuzz/corpus/{target}"));
    status(cargo_fuzz("cmin", target).arg(committed))
}

fn status(c: &mut Command) -> anyhow::Result<()> {
    let s = c.status().with_context(|| format!("running {c:?}"))?;
    if !s.success() {
        bail!("{c:?} failed ({s})");
    }
    Ok(())
}
