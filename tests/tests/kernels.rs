//! Each Debian router kernel boots under qemu (TCG) and gives the guest what
//! the kernel-matrix checks build on: the modules, bpffs, veth and netns.
//! No skipping: a missing qemu or a failed download fails the test.

use std::time::Instant;

use iotfence_tests::vm::{Guest, Kernel, DEFAULT_TIMEOUT};

/// Prints facts one per line, then fails (non-zero) if any basic is missing.
const PROBE: &str = r#"set -e
echo "uname=$(uname -r)"
cat /proc/modules
grep -q ' /sys/fs/bpf bpf ' /proc/mounts && echo bpffs=mounted
ip link add v0 type veth peer name v1
ip link set v0 up && ip link set v1 up
ip netns add probe
ip link set v1 netns probe
ip -n probe link show v1 >/dev/null && echo netns=ok
tc qdisc add dev v0 clsact && echo clsact=ok
"#;

fn boots(kernel: Kernel) {
    let t = Instant::now();
    let fetched = kernel.fetch().unwrap_or_else(|e| panic!("{e:#}"));
    let fetch_time = t.elapsed();
    let out = Guest::new(&fetched)
        .exe("/usr/sbin/ip")
        .exe("/usr/sbin/tc")
        .run(PROBE, DEFAULT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "Debian {} {} ({}): fetch {fetch_time:.1?}, boot+probe {:.1?}\n{}",
        kernel.debian(),
        fetched.package,
        fetched.version,
        out.elapsed,
        out.output
    );
    assert_eq!(out.status, 0, "the probe failed:\n{}", out.console);
    let uname = out.output.lines().find_map(|l| l.strip_prefix("uname="));
    assert_eq!(uname, Some(fetched.release.as_str()), "{}", out.console);
    for m in ["veth", "sch_ingress", "cls_bpf"] {
        assert!(
            out.output.lines().any(|l| l.starts_with(&format!("{m} "))),
            "{m} not in /proc/modules:\n{}",
            out.output
        );
    }
    for fact in ["bpffs=mounted", "netns=ok", "clsact=ok"] {
        assert!(out.output.contains(fact), "no {fact}:\n{}", out.console);
    }
}

#[test]
fn boots_debian_11_5_10() {
    boots(Kernel::Bullseye);
}

#[test]
fn boots_debian_12_6_1() {
    boots(Kernel::Bookworm);
}

#[test]
fn boots_debian_13_6_12() {
    boots(Kernel::Trixie);
}

/// The kernel matrix: inside the booted kernel, the datapath fixture table
/// on XDP and TC ingress and the DNS redirect's, the lab smoke check, the
/// DNS redirect, a VLAN sub-interface and a VLAN-filtering bridge on both
/// attach modes (`iotfence-vm-suite`), with the real daemon, ip, bridge,
/// tc, ethtool and dnsmasq.
fn matrix(kernel: Kernel) {
    let fetched = kernel.fetch().unwrap_or_else(|e| panic!("{e:#}"));
    let suite = env!("CARGO_BIN_EXE_iotfence-vm-suite");
    let daemon = iotfence_tests::lab::daemon_binary();
    let out = Guest::new(&fetched)
        .exe_stripped(&daemon)
        .exe_stripped(suite)
        .exe("/usr/sbin/ip")
        .exe("/usr/sbin/tc")
        .exe("/usr/sbin/dnsmasq")
        .exe("/usr/sbin/ethtool")
        .exe("/usr/sbin/bridge")
        .module("bridge")
        .module("8021q")
        // dnsmasq looks its user up.
        .bytes("/etc/passwd", 0o644, PASSWD)
        .bytes("/etc/group", 0o644, GROUP)
        .run(
            &format!(
                "IOTFENCE_TCG=1 IOTFENCE_BIN={} {}",
                Guest::stripped_path(&daemon).display(),
                Guest::stripped_path(suite.as_ref()).display()
            ),
            MATRIX_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "Debian {} ({}): {:.1?}\n{}",
        kernel.debian(),
        fetched.release,
        out.elapsed,
        out.output
    );
    assert_eq!(
        out.status,
        0,
        "Debian {} ({}): the suite failed:\n{}",
        kernel.debian(),
        fetched.release,
        out.output
    );
    assert!(
        out.output.contains("vm-suite: 13 passed, 0 failed"),
        "{}",
        out.output
    );
}

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// TCG runs the guest 10-30x slower than the host.
const MATRIX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

#[test]
fn matrix_debian_11_5_10() {
    matrix(Kernel::Bullseye);
}

#[test]
fn matrix_debian_12_6_1() {
    matrix(Kernel::Bookworm);
}

#[test]
fn matrix_debian_13_6_12() {
    matrix(Kernel::Trixie);
}
