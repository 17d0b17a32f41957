//! Developer commands: `cargo xtask setup | build | deb | lint | test | fuzz | bench | lab`.
//! Every command installs what it needs first (idempotently), so the two
//! README commands work on a fresh machine.

mod cross;
mod deb;
mod fuzz;
mod lint;
mod setup;
mod sh;

use std::process::{Command, ExitCode};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "iotfence developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain and lab tools (Debian packages, bpf-linker).
    Setup,
    /// Build the daemon (with the embedded eBPF object), release mode.
    Build {
        /// `aarch64`: cross-build the daemon and the kernel-matrix suite
        /// for arm64, statically linked (prints their directory).
        #[arg(long)]
        target: Option<String>,
    },
    /// The Debian package (target/deb/iotfence_<version>_<arch>.deb): the
    /// daemon, the systemd unit, /etc/iotfence/, the vendor library, the
    /// schema, the dashboard and man pages.
    Deb {
        #[arg(long, value_enum, default_value = "host")]
        arch: deb::Arch,
    },
    /// rustfmt --check and clippy -D warnings on the workspace and the eBPF
    /// crate, and dependencies no target uses (CI runs it first).
    Lint,
    /// Run every test, privileged ones included (needs root), then each
    /// fuzz target for a bounded time (`fuzz`).
    Test {
        /// Seconds per fuzz target after the tests (0: no fuzzing).
        #[arg(long, default_value_t = 60)]
        fuzz_seconds: u64,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Coverage-guided fuzzing (cargo-fuzz, libFuzzer): the DNS learner,
    /// the policy compiler, and the datapath against its userspace model
    /// (needs root); from the committed corpus in fuzz/corpus/.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Then fold the new inputs into fuzz/corpus/ and minimize it.
        #[arg(long)]
        cmin: bool,
        /// Targets to run (default: all): dns_learn, policy, datapath.
        targets: Vec<String>,
    },
    /// Benchmarks: datapath cost per packet against an empty XDP program
    /// (also as tables grow), live throughput on a veth path against
    /// nftables, DNS learning against dnsmasq --nftset, and control-plane
    /// costs; results in target/bench/, method and numbers in BENCHMARKS.md.
    Bench {
        /// The CI mode: fewer repetitions; fails when a ratio passes its
        /// threshold in bench/thresholds.json.
        #[arg(long)]
        short: bool,
        /// More arguments for the benchmark, e.g. `--part sweep` or
        /// `--only TEXT`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The lab demo: one simulated device per vendor profile and a
    /// compromised one, behind a router running iotfence; then a summary.
    Lab {
        /// Keep the lab up after the summary, until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Setup => setup::all(),
        Cmd::Build { target: None } => {
            setup::all()?;
            cargo(&["build", "--release", "-p", "iotfence"])
        }
        Cmd::Build {
            target: Some(t), ..
        } if t == "aarch64" => {
            setup::all()?;
            let dir = cross::build(
                &[
                    ("iotfence", "iotfence"),
                    ("iotfence-tests", "iotfence-vm-suite"),
                ],
                "static",
                true,
            )?;
            println!("{}", dir.display());
            Ok(())
        }
        Cmd::Build { target: Some(t) } => {
            bail!("unknown target {t}: aarch64 is the one cross target")
        }
        Cmd::Deb { arch } => {
            setup::all()?;
            let deb = deb::build(arch)?;
            println!("{}", deb.display());
            Ok(())
        }
        Cmd::Lint => {
            setup::all()?;
            lint::run()
        }
        Cmd::Test { fuzz_seconds, args } => {
            setup::all()?;
            require_root("the tests load eBPF programs and build network namespaces")?;
            step("building the daemon for the lab tests");
            cargo(&["build", "-p", "iotfence"])?;
            step("running the test suite");
            let mut a = vec!["test", "--workspace", "--all-targets"];
            a.extend(args.iter().map(String::as_str));
            // The fuzz run goes before the closing summary line, and each
            // target counts there as one test.
            test_summary(&a, || match fuzz_seconds {
                0 => Ok(0),
                s => fuzz::run(s, &[], false).map(|()| fuzz::TARGETS.len() as u64),
            })
        }
        Cmd::Fuzz {
            seconds,
            cmin,
            targets,
        } => {
            setup::all()?;
            if targets.is_empty() || targets.iter().any(|t| t == "datapath") {
                require_root("the datapath target loads eBPF programs")?;
            }
            fuzz::run(seconds, &targets, cmin)
        }
        Cmd::Bench { short, args } => {
            setup::all()?;
            require_root("the benchmarks load eBPF programs")?;
            step("building the benchmarks (release)");
            cargo(&[
                "build",
                "--release",
                "-p",
                "iotfence",
                "-p",
                "iotfence-tests",
                "--bin",
                "iotfence",
                "--bin",
                "iotfence-bench",
            ])?;
            step("running the benchmarks (BENCHMARKS.md explains each part)");
            let mut a = vec![
                "run",
                "-q",
                "--release",
                "-p",
                "iotfence-tests",
                "--bin",
                "iotfence-bench",
            ];
            a.push("--");
            if short {
                a.push("--short");
            }
            a.extend(args.iter().map(String::as_str));
            cargo(&a)
        }
        Cmd::Lab { keep } => {
            setup::all()?;
            require_root("the lab builds network namespaces and attaches eBPF programs")?;
            step("building the daemon");
            cargo(&["build", "-p", "iotfence"])?;
            step("compiling the lab program");
            let mut a = vec!["run", "-q", "-p", "iotfence-tests", "--bin", "iotfence-lab"];
            if keep {
                a.extend(["--", "--keep"]);
            }
            cargo(&a)
        }
    }
}

/// The repository's root.
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn step(msg: &str) {
    eprintln!("==> {msg}");
}

fn require_root(why: &str) -> anyhow::Result<()> {
    if unsafe { libc_geteuid() } != 0 {
        bail!("run as root: {why}");
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Runs `cargo test`, echoing its output, then `after` (which returns how
/// many more checks passed), and closes with one line that adds up every
/// test binary's result and those checks.
fn test_summary(args: &[&str], after: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(&cargo)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cargo}"))?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(['.', ';']) {
                let mut w = part.split_whitespace();
                if let (Some(n), Some(kind)) =
                    (w.next().and_then(|n| n.parse::<u64>().ok()), w.next())
                {
                    match kind {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("{passed} passed, {failed} failed, {ignored} skipped");
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    match after() {
        Ok(n) => passed += n,
        Err(e) => {
            println!("{passed} passed, {} failed, {ignored} skipped", failed + 1);
            return Err(e);
        }
    }
    println!("{passed} passed, {failed} failed, {ignored} skipped");
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
