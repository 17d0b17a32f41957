//! arm64 routers: the daemon and the kernel-matrix suite cross-built for
//! aarch64 (`cargo xtask build --target aarch64`), Debian 12's arm64 kernel
//! booted under qemu-system-aarch64 (TCG), and inside it: the kernel probe
//! and the datapath fixture table on XDP and TC ingress and the DNS
//! redirect's rewrites, the same checks the x86 kernel matrix runs (the
//! same eBPF object, an arm64 verifier and JIT).
//! And the arm64 Debian package: built, lintian-clean, an aarch64 binary.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use iotfence_tests::vm::{Guest, Kernel};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `cargo xtask ARGS`; the last line it printed (a path).
fn xtask(args: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "-q", "-p", "xtask", "--"])
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running cargo xtask");
    assert!(
        out.status.success(),
        "cargo xtask {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.trim().lines().last().expect("a path").trim())
}

fn machine(elf: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-h")
        .arg(elf)
        .output()
        .expect("readelf (binutils)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Machine:")
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn the_datapath_runs_on_debians_arm64_kernel() {
    let t = Instant::now();
    let bin = xtask(&["build", "--target", "aarch64"]);
    let build = t.elapsed();
    let (suite, daemon) = (bin.join("iotfence-vm-suite"), bin.join("iotfence"));
    assert_eq!(machine(&suite), "AArch64");
    let kernel = Kernel::BookwormArm64
        .fetch()
        .unwrap_or_else(|e| panic!("{e:#}"));
    let out = Guest::new(&kernel)
        .static_exe(&suite)
        .static_exe(&daemon)
        .run(
            &format!(
                "set -e\nuname -m\n{} check --kernel\n{} 'fixture table'\n",
                Guest::stripped_path(&daemon).display(),
                Guest::stripped_path(&suite).display()
            ),
            Duration::from_secs(600),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "arm64: cross-build {build:.1?}; {} ({}): boot + checks {:.1?}\n{}",
        kernel.package, kernel.version, out.elapsed, out.output
    );
    assert_eq!(out.status, 0, "{}", out.console);
    assert!(
        out.output.lines().any(|l| l.trim() == "aarch64"),
        "{}",
        out.output
    );
    assert!(
        out.output.contains("vm-suite: 3 passed, 0 failed"),
        "{}",
        out.console
    );
}

#[test]
fn the_arm64_package_is_lintian_clean() {
    let deb = xtask(&["deb", "--arch", "arm64"]);
    let field = |f: &str| {
        let out = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(f)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(field("Architecture"), "arm64");
    let x = std::env::temp_dir().join(format!("iotfence-arm64-deb-{}", std::process::id()));
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&x)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(machine(&x.join("usr/bin/iotfence")), "AArch64");
    std::fs::remove_dir_all(&x).unwrap();
    let lint = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .expect("lintian");
    assert!(
        lint.status.success(),
        "lintian:\n{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}
