//! Installs what building and testing need, skipping what is present:
//! Debian's rustc-web (1.96, LLVM 22) with its library sources for the eBPF
//! build (rustup toolchains here lack rust-src), LLVM 22 for bpf-linker,
//! bpf-linker 0.13.0 itself, the lab's tools, qemu with busybox for the
//! kernel-matrix tests, and cargo-fuzz for `cargo xtask fuzz`.

use std::{path::Path, process::Command};

use anyhow::{bail, Context};

use crate::step;

/// Debian packages and a file each one provides (present = installed).
const PACKAGES: &[(&str, &str)] = &[
    ("rustc-web", "/usr/bin/rustc"),
    ("cargo-web", "/usr/bin/cargo"),
    (
        "rust-web-src",
        "/usr/lib/rustlib/src/rust/library/core/Cargo.toml",
    ),
    ("llvm-22-dev", "/usr/lib/llvm-22/bin/llvm-config"),
    ("libpolly-22-dev", "/usr/lib/llvm-22/lib/libPolly.a"),
    ("libzstd-dev", "/usr/include/zstd.h"),
    // `cargo xtask lint` runs clippy on the eBPF crate with Debian's rustc.
    ("rust-web-clippy", "/usr/bin/cargo-clippy"),
    ("iproute2", "/usr/sbin/ip"),
    ("dnsmasq-base", "/usr/sbin/dnsmasq"),
    ("nftables", "/usr/sbin/nft"),
    ("ethtool", "/usr/sbin/ethtool"),
    ("bpftool", "/usr/sbin/bpftool"),
    // promtool checks the metrics; the server runs the dashboard test.
    ("prometheus", "/usr/bin/promtool"),
    // The kernel-matrix tests boot Debian's kernels under qemu (TCG); qemu's
    // Depends bring its firmware (seabios, ipxe-qemu) without recommends.
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("busybox-static", "/bin/busybox"),
    // objcopy strips debug builds before they go into a guest's initramfs.
    ("binutils", "/usr/bin/objcopy"),
    // Modules ship as .ko.xz (trixie) and may come as .ko.zst.
    ("xz-utils", "/usr/bin/xz"),
    ("zstd", "/usr/bin/zstd"),
    // The service test: the package checked by lintian, installed and run
    // under systemd in a container (systemd-nspawn over a copy-on-write
    // view of this machine's own root).
    ("lintian", "/usr/bin/lintian"),
    ("systemd-container", "/usr/bin/systemd-nspawn"),
    // arm64: the cross linker and C library (`cross.rs`), and the arm64
    // kernel's emulator for the arm64 boot test.
    ("gcc-aarch64-linux-gnu", "/usr/bin/aarch64-linux-gnu-gcc"),
    ("libc6-dev-arm64-cross", "/usr/aarch64-linux-gnu/lib/libc.a"),
    ("qemu-system-arm", "/usr/bin/qemu-system-aarch64"),
];

const BPF_LINKER_VERSION: &str = "0.13.0";
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn all() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, f)| !Path::new(f).exists())
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        step(&format!(
            "installing Debian packages: {} (first run only)",
            missing.join(" ")
        ));
        run(Command::new("apt-get").arg("update").arg("-q"))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing))?;
    }
    if bpf_linker_version().as_deref() != Some(BPF_LINKER_VERSION) {
        step(&format!("building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (first run only, a few minutes)"));
        let path = format!(
            "/usr/lib/llvm-22/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        run(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .env("PATH", path)
                .args([
                    "install",
                    "bpf-linker",
                    "--version",
                    BPF_LINKER_VERSION,
                    "--locked",
                    "--force",
                ])
                .args(["--no-default-features", "--features", "llvm-22"]),
        )?;
    }
    if cargo_fuzz_version().as_deref() != Some(CARGO_FUZZ_VERSION) {
        step(&format!(
            "installing cargo-fuzz {CARGO_FUZZ_VERSION} (first run only)"
        ));
        run(
            Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
                "install",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--locked",
                "--force",
            ]),
        )?;
    }
    Ok(())
}

/// `cargo-fuzz 0.13.2` -> `0.13.2`; `None` when it is not installed.
pub fn cargo_fuzz_version() -> Option<String> {
    let out = Command::new("cargo-fuzz").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

fn bpf_linker_version() -> Option<String> {
    let out = Command::new("bpf-linker").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1).map(str::to_owned)
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
