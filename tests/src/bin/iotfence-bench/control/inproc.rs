//! Applying the 10,000-rule policy in process, through the daemon's own
//! code, timed step by step: parsing the YAML, compiling it (validation
//! and folding into LPM entries), and writing the maps, first into fresh
//! maps and then again and again as a reload does (the other generation
//! written, the generation flipped, the old one cleared).

use std::{path::Path, time::Instant};

use iotfence::{apply, compile, config, datapath::Datapath, sources};
use iotfence_tests::privileged::PinDir;

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
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Times `reps` parses, compiles and re-applies, alternating `policies`.
pub fn run(policies: &[String; 2], reps: usize) -> anyhow::Result<Steps> {
    let pins = PinDir::new();
    let cfg = config::parse(
        Path::new("iotfence.yaml"),
        &format!(
            "interfaces: [iot0]\npolicy: policy.yaml\npin_dir: {}\n",
            pins.path.display()
        ),
    )
    .map_err(|d| anyhow::anyhow!("config: {d:?}"))?;
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
    let lpm_entries = compiled[0]
        .profiles
        .iter()
        .map(|p| p.egress.len() + p.inbound.len())
        .sum();
    let mut dp = Datapath::load(&pins.path, cfg.dns.max_entries as u32)?;
    let t = Instant::now();
    apply::apply(&mut dp.maps, &cfg, &compiled[0])?;
    let first_apply_ms = ms(t);
    let mut reapply_ms = Vec::new();
    for i in 1..=reps {
        let t = Instant::now();
        apply::apply(&mut dp.maps, &cfg, &compiled[i % 2])?;
        reapply_ms.push(ms(t));
    }
    Ok(Steps {
        lpm_entries,
        parse_ms,
        compile_ms,
        first_apply_ms,
        reapply_ms,
    })
}
