//! Applying the 10,000-rule policy in process, through the daemon's own
//! code, timed step by step: parsing the YAML, compiling it (validation
//! and folding into LPM entries), and writing the maps, first into fresh
//! maps and then again and again as a reload does (the other generation
//! written, the generation flipped, the old one cleared). The same policy
//! kept as a file per profile is read and compiled as the daemon's reload
//! does, with one file changed (only that one is parsed again).

use std::{path::Path, time::Instant};

use iotfence::{config, policy::compile, policy::sources};
use iotfence_common::consts::LEARNED_ENTRIES;
use iotfence_tests::privileged::TempDir;

use super::{memory, policy};

/// Milliseconds of each step.
pub struct Steps {
    /// LPM entries the compiled policy writes (prefixes, folded).
    pub lpm_entries: usize,
    pub parse_ms: Vec<f64>,
    /// Validation and folding, after parsing.
    pub compile_ms: Vec<f64>,
    /// Writing into fresh maps (no generation to clear).
    pub first_apply_ms: f64,
    /// The reload path: other generation written, flip, old one cleared.
    pub reapply_ms: Vec<f64>,
    /// Files of the policy kept as a file per profile plus the site's.
    pub split_files: usize,
    /// Reading and compiling those files, all parsed.
    pub split_all_ms: Vec<f64>,
    /// The same with one profile's file changed since the last read.
    pub split_one_ms: Vec<f64>,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Times `reps` parses, compiles and re-applies, alternating `policies`.
pub fn run(policies: &[String; 2], reps: usize) -> anyhow::Result<Steps> {
    let (mut dp, cfg, _pins) = memory::load(LEARNED_ENTRIES)?;
    let mut compiled = Vec::new();
    let (mut parse_ms, mut compile_ms) = (Vec::new(), Vec::new());
    for i in 0..reps.max(2) {
        let text = &policies[i % 2];
        let t = Instant::now();
        let src = sources::parse(Path::new("policy.yaml"), text)
            .map_err(|d| anyhow::anyhow!("policy: {d:?}"))?;
        parse_ms.push(ms(t));
        let t = Instant::now();
        let c = compile::compile_sources(std::slice::from_ref(&src), &cfg)
            .map_err(|d| anyhow::anyhow!("policy: {d:?}"))?;
        compile_ms.push(ms(t));
        anyhow::ensure!(c.warnings.is_empty(), "policy lints: {:?}", c.warnings);
        if compiled.len() < 2 {
            compiled.push(c);
        }
    }
    let lpm_entries = lpm_entries(&compiled[0]);
    let t = Instant::now();
    dp.apply(&cfg, &compiled[0])?;
    let first_apply_ms = ms(t);
    let mut reapply_ms = Vec::new();
    for i in 1..=reps {
        let t = Instant::now();
        dp.apply(&cfg, &compiled[i % 2])?;
        reapply_ms.push(ms(t));
    }
    let (split_files, split_all_ms, split_one_ms) = split(policies, &cfg, reps, lpm_entries)?;
    Ok(Steps {
        lpm_entries,
        parse_ms,
        compile_ms,
        first_apply_ms,
        reapply_ms,
        split_files,
        split_all_ms,
        split_one_ms,
    })
}

fn lpm_entries(c: &compile::Compiled) -> usize {
    c.profiles
        .iter()
        .map(|p| p.egress.len() + p.inbound.len())
        .sum()
}

/// Times reading and compiling the policy as a directory of files, from
/// nothing and with one profile's file changed (alternating its variant).
fn split(
    policies: &[String; 2],
    cfg: &config::Config,
    reps: usize,
    lpm: usize,
) -> anyhow::Result<(usize, Vec<f64>, Vec<f64>)> {
    let dir = TempDir::new("iotfence-split-")?;
    let variants = [policy::split(&policies[0]), policy::split(&policies[1])];
    for (name, text) in &variants[0] {
        std::fs::write(dir.0.join(name), text)?;
    }
    let files = variants[0].len();
    let read = |cache: &mut sources::Cache| -> anyhow::Result<f64> {
        let t = Instant::now();
        let srcs = sources::read_cached(&dir.0, cache)
            .map_err(|d| anyhow::anyhow!("split policy: {d:?}"))?;
        let c = compile::compile_sources(&srcs, cfg)
            .map_err(|d| anyhow::anyhow!("split policy: {d:?}"))?;
        let took = ms(t);
        anyhow::ensure!(lpm_entries(&c) == lpm, "the split policy compiles alike");
        Ok(took)
    };
    let mut all = Vec::new();
    for _ in 0..reps {
        let mut cold = sources::Cache::default();
        all.push(read(&mut cold)?);
        anyhow::ensure!(cold.parsed == files);
    }
    let mut cache = sources::Cache::default();
    read(&mut cache)?;
    let mut variant = vec![0; files];
    let mut one = Vec::new();
    for i in 0..reps {
        // Profile files only: the last one is the site's.
        let k = i % (files - 1);
        variant[k] ^= 1;
        std::fs::write(dir.0.join(&variants[0][k].0), &variants[variant[k]][k].1)?;
        one.push(read(&mut cache)?);
        anyhow::ensure!(cache.parsed == 1, "{} files parsed again", cache.parsed);
    }
    Ok((files, all, one))
}
