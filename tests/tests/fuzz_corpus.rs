//! The committed corpora of the `dns_learn` and `policy` fuzz targets,
//! replayed through the targets' bodies as plain tests (no fuzzer needed):
//! every input that once found new coverage keeps its invariants.

use std::path::{Path, PathBuf};

use iotfence_tests::{fuzz_dns, fuzz_policy};

fn corpus(target: &str, at_least: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= at_least,
        "{}: {} inputs",
        dir.display(),
        out.len()
    );
    out
}

#[test]
fn dns_learn_corpus_keeps_its_invariants() {
    for (_, data) in corpus("dns_learn", 5) {
        fuzz_dns::check(&data);
    }
}

#[test]
fn policy_corpus_keeps_its_invariants() {
    for (_, data) in corpus("policy", 5) {
        fuzz_policy::check(&data);
    }
}

/// The seeds include policies that compile: the fuzzer starts from both
/// sides of the compiler.
#[test]
fn policy_corpus_has_compiling_policies() {
    let cfg_text = "interfaces: [iot0]\npolicy: policy.yaml\nresolvers: [192.0.2.1]\n";
    let cfg = iotfence::config::parse(Path::new("c.yaml"), cfg_text).unwrap();
    let compiled = corpus("policy", 5)
        .iter()
        .filter(|(_, d)| {
            std::str::from_utf8(d).is_ok_and(|t| {
                iotfence::policy::compile::compile(Path::new(fuzz_policy::PATH), t, &cfg).is_ok()
            })
        })
        .count();
    assert!(compiled >= 2, "only {compiled} corpus policies compile");
}

/// The committed corpora stay small (`cargo xtask fuzz --cmin` keeps only
/// inputs that add coverage): a clone should not carry megabytes of them.
#[test]
fn committed_corpora_stay_small() {
    let total: u64 = ["datapath", "dns_learn", "policy"]
        .iter()
        .flat_map(|t| corpus(t, 1))
        .map(|(_, d)| d.len() as u64)
        .sum();
    assert!(total < 3 << 20, "fuzz/corpus holds {total} bytes");
}
