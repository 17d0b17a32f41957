//! arm64 routers: the daemon and the kernel-matrix suite cross-built for
//! aarch64 (`cargo xtask build --target aarch64`), Debian 12's arm64 kernel
//! booted under qemu-system-aarch64 (TCG), and inside it: the kernel probe,
//! the datapath fixture table on XDP and TC ingress and the DNS redirect's
//! rewrites, and the lab smoke check on both attach modes (namespaces, a
//! bridge, dnsmasq, the real daemon; with bookworm's arm64 iproute2 and
//! dnsmasq and their libraries), the same checks the x86 kernel matrix runs
//! (the same eBPF object, an arm64 verifier and JIT).
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
    let t = Instant::now();
    let kernel = Kernel::BookwormArm64
        .fetch()
        .unwrap_or_else(|e| panic!("{e:#}"));
    // The lab's own programs: the host's x86 ones cannot run in the guest.
    let userland = Kernel::BookwormArm64
        .userland(&["iproute2", "dnsmasq-base"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    let fetch = t.elapsed();
    let (daemon_at, suite_at) = (Guest::stripped_path(&daemon), Guest::stripped_path(&suite));
    let out = Guest::new(&kernel)
        .static_exe(&suite)
        .static_exe(&daemon)
        .userland_exe(&userland, "/sbin/ip")
        .userland_exe(&userland, "/usr/sbin/dnsmasq")
        .module("bridge")
        // dnsmasq looks its user up.
        .bytes("/etc/passwd", 0o644, PASSWD)
        .bytes("/etc/group", 0o644, GROUP)
        .run(
            &format!(
                "set -e\nuname -m\n/sbin/ip -V\n{daemon} check --kernel\n{suite} 'fixture table'\n\
                 IOTFENCE_TCG=1 IOTFENCE_BIN={daemon} {suite} 'lab smoke'\n",
                daemon = daemon_at.display(),
                suite = suite_at.display()
            ),
            Duration::from_secs(900),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "arm64: cross-build {build:.1?}; kernel and packages {fetch:.1?}; {} ({}): boot + checks {:.1?}\n{}",
        kernel.package, kernel.version, out.elapsed, out.output
    );
    assert_eq!(out.status, 0, "{}", out.console);
    assert!(
        out.output.lines().any(|l| l.trim() == "aarch64"),
        "{}",
        out.output
    );
    // The fixture table's three checks, then the lab smoke's two.
    for summary in [
        "vm-suite: 3 passed, 0 failed",
        "vm-suite: 2 passed, 0 failed",
    ] {
        assert!(out.output.contains(summary), "{}", out.console);
    }
}

/// The accounts dnsmasq needs, as the x86 kernel matrix gives its guests.
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

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
