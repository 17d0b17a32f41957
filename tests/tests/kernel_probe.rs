//! A kernel too old for a required feature gets one line naming it and exit
//! 71 before anything is touched; `check --kernel` says which attach modes
//! will work. Older kernels are simulated by forcing features off
//! (`IOTFENCE_PRETEND_MISSING`); the kernel matrix boots the real ones.

use std::process::Command;

use iotfence::kernel::probe::PRETEND_MISSING_ENV;
use iotfence_tests::{lab::daemon_binary, privileged::TempDir};

fn config(dir: &TempDir, attach: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("policy.yaml"),
        "profiles:\n  p:\n    egress:\n      - to: 198.51.100.0/24\n        proto: tcp\n        ports: 443\n",
    )
    .unwrap();
    let cfg = dir.join("iotfence.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interfaces: [iotf-none0]\nattach: {attach}\npolicy: policy.yaml\npin_dir: {}\nstate_dir: {}\nmetrics: {{ enabled: false }}\n",
            dir.join("pins").display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_missing_required_feature_is_one_line_and_exit_71_before_any_change() {
    let dir = TempDir::new("iotfence-probe-").unwrap();
    let cfg = config(&dir, "xdp");
    let out = Command::new(daemon_binary())
        .args(["run", "--config"])
        .arg(&cfg)
        .env(PRETEND_MISSING_ENV, "ringbuf")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(71), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(
            "BPF ring buffer maps (violation events, DNS learning) need Linux 5.8 or newer"
        ),
        "{stderr}"
    );
    assert!(!dir.join("pins").exists(), "the pin directory was created");
    assert!(
        !dir.join("state").exists(),
        "the state directory was created"
    );
}

#[test]
fn check_kernel_says_which_attach_modes_work() {
    let dir = TempDir::new("iotfence-probe-").unwrap();
    let check = |attach: &str, missing: &str| {
        Command::new(daemon_binary())
            .args(["check", "--kernel", "--config"])
            .arg(config(&dir, attach))
            .env(PRETEND_MISSING_ENV, missing)
            .output()
            .unwrap()
    };
    let all = check("xdp", "");
    let text = String::from_utf8_lossy(&all.stdout);
    assert_eq!(all.status.code(), Some(0), "{text}");
    assert!(
        text.contains("attach: xdp (native, else generic):       works"),
        "{text}"
    );
    // Without XDP links, the xdp mode is refused and tc still works.
    let old = check("xdp", "xdp_link,tcx,coarse_clock,xdp_load_bytes");
    let text = String::from_utf8_lossy(&old.stdout);
    assert_eq!(old.status.code(), Some(71), "{text}");
    assert!(text.contains("refused: kernel"), "{text}");
    assert!(
        text.contains("TC programs attach as clsact filters"),
        "{text}"
    );
    assert!(text.contains("deadlines read bpf_ktime_get_ns"), "{text}");
    assert!(
        String::from_utf8_lossy(&old.stderr)
            .contains("XDP bpf_links (enforcement that outlives the daemon) need Linux 5.9"),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    assert_eq!(check("tc", "xdp_link").status.code(), Some(0));
}
