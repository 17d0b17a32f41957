//! `cargo xtask lint`: formatting and clippy with warnings as errors, on the
//! workspace and on the eBPF crate (Debian's clippy: rustup's toolchains
//! have no `rust-src` for `-Z build-std`), plus unused dependencies.
//!
//! rustc's `unused_crate_dependencies` fires per compiled target: a
//! dependency only the binary uses is "unused" in every integration test.
//! So its findings are gathered per target and a dependency counts as
//! unused only when every target that can see it says so.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{bail, Context};

use crate::{root, step};

pub fn run() -> anyhow::Result<()> {
    let root = root();
    step("rustfmt --check (workspace, ebpf, fuzz)");
    for manifest in ["Cargo.toml", "ebpf/Cargo.toml", "fuzz/Cargo.toml"] {
        let mut c = Command::new(cargo());
        c.current_dir(&root)
            .args(["fmt", "--all", "--manifest-path", manifest, "--", "--check"]);
        ok(&mut c, &format!("cargo fmt --check ({manifest})"))?;
    }
    step("clippy -D warnings (workspace), unused dependencies");
    workspace_clippy(&root)?;
    step("clippy -D warnings (ebpf, Debian's clippy)");
    ebpf_clippy(&root)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn ok(c: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = c.status().with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Clippy over every target; prints each diagnostic, fails on any, and on
/// dependencies no target uses.
fn workspace_clippy(root: &Path) -> anyhow::Result<()> {
    let out = Command::new(cargo())
        .current_dir(root)
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--message-format=json-diagnostic-rendered-ansi",
            "--",
            // No `-D warnings`: it would make the per-target unused-crate
            // findings errors and stop the build before every target has
            // spoken. Any other warning fails the lint below instead.
            "-W",
            "unused_crate_dependencies",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo clippy")?;
    // (package id, target name and kind) -> crates it reported unused.
    let mut unused: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut other = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-message" {
            continue;
        }
        let m = &v["message"];
        if m["code"]["code"] == "unused_crate_dependencies" {
            let text = m["message"].as_str().unwrap_or_default();
            // "extern crate `foo` is unused in crate `bar`"
            if let Some(krate) = text.split('`').nth(1) {
                let key = (
                    v["package_id"].as_str().unwrap_or_default().to_string(),
                    target_key(&v["target"]),
                );
                unused.entry(key).or_default().insert(krate.to_string());
            }
        } else if m["level"] == "error" || m["level"] == "warning" {
            other += 1;
            eprint!("{}", m["rendered"].as_str().unwrap_or_default());
        }
    }
    let idle = idle_dependencies(root, &unused)?;
    for (pkg, dep) in &idle {
        eprintln!("error: `{pkg}` declares `{dep}`, which none of its targets uses");
    }
    if other > 0 || !idle.is_empty() || !out.status.success() {
        bail!(
            "clippy: {other} diagnostic(s), {} unused dependenc(ies)",
            idle.len()
        );
    }
    Ok(())
}

fn target_key(t: &serde_json::Value) -> String {
    format!("{}:{}", t["kind"], t["name"].as_str().unwrap_or_default())
}

/// (package, dependency) pairs that every target able to see the
/// dependency reported unused: normal ones by every target, dev ones by
/// every test-mode target (lib tests included).
fn idle_dependencies(
    root: &Path,
    unused: &BTreeMap<(String, String), BTreeSet<String>>,
) -> anyhow::Result<Vec<(String, String)>> {
    let out = Command::new(cargo())
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut idle = Vec::new();
    for p in meta["packages"].as_array().into_iter().flatten() {
        let id = p["id"].as_str().unwrap_or_default();
        let name = p["name"].as_str().unwrap_or_default();
        let targets: Vec<(String, bool)> = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["kind"][0] != "custom-build")
            .map(|t| {
                let kind = t["kind"][0].as_str().unwrap_or_default();
                // Targets that see dev-dependencies.
                let test = matches!(kind, "test" | "bench" | "example" | "lib");
                (target_key(t), test)
            })
            .collect();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dev = d["kind"] == "dev";
            if d["kind"] == "build" {
                continue;
            }
            let krate = d["rename"]
                .as_str()
                .or(d["name"].as_str())
                .unwrap_or_default()
                .replace('-', "_");
            let seeing: Vec<&String> = targets
                .iter()
                .filter(|(_, test)| !dev || *test)
                .map(|(k, _)| k)
                .collect();
            let all_unused = !seeing.is_empty()
                && seeing.iter().all(|k| {
                    unused
                        .get(&(id.to_string(), (*k).clone()))
                        .is_some_and(|s| s.contains(&krate))
                });
            if all_unused {
                idle.push((name.to_string(), krate));
            }
        }
    }
    Ok(idle)
}

/// The eBPF crate through Debian's cargo and clippy, in the environment
/// `daemon/build.rs` builds it in.
fn ebpf_clippy(root: &Path) -> anyhow::Result<()> {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cargo"));
    // Debian's cargo-clippy first: rustup's would pick rustup's rustc.
    let path = format!(
        "/usr/bin:/usr/lib/llvm-22/bin:{}:/usr/local/bin:/bin",
        cargo_home.join("bin").display()
    );
    let mut c = Command::new("/usr/bin/cargo");
    c.env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("CARGO_HOME", &cargo_home)
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(root.join("ebpf"))
        .args([
            "clippy",
            "--release",
            "--locked",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
        ])
        .arg(root.join("target/ebpf-clippy"))
        .args(["--", "-D", "warnings"]);
    ok(&mut c, "clippy on the eBPF crate")
}
