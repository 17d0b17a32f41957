//! Builds the eBPF programs (`../ebpf`) and hands the object to the daemon,
//! which embeds it. The eBPF crate needs `-Z build-std=core` and matching
//! library sources, which rustup's toolchains here lack; Debian's rustc-web
//! ships both (`cargo xtask setup` installs it and bpf-linker).
//!
//! `IOTFENCE_SKIP_EBPF=1` skips that build and embeds an empty object, for
//! `cargo check`, clippy and rust-analyzer on a machine without the BPF
//! toolchain; such a daemon refuses to load (it has no programs).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let ebpf = root.join("ebpf");
    for p in [
        "ebpf/src",
        "ebpf/Cargo.toml",
        "ebpf/Cargo.lock",
        "ebpf/.cargo/config.toml",
        "common/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let object = out_dir.join("iotfence.bpf.o");
    println!("cargo:rerun-if-env-changed=IOTFENCE_SKIP_EBPF");
    if env::var_os("IOTFENCE_SKIP_EBPF").is_some_and(|v| v == "1") {
        println!(
            "cargo:warning=IOTFENCE_SKIP_EBPF=1: no eBPF object embedded; this daemon cannot load"
        );
        std::fs::write(&object, b"").expect("writing the empty object");
        return;
    }

    for tool in [DEBIAN_RUSTC, DEBIAN_CARGO] {
        if !Path::new(tool).exists() {
            panic!("{tool} is missing: the eBPF build needs Debian's rustc-web; run `cargo xtask setup`");
        }
    }
    let home = env::var_os("HOME").unwrap_or_else(|| "/root".into());
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cargo"));
    let path = format!(
        "{}:/usr/lib/llvm-22/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        cargo_home.join("bin").display()
    );
    let target_dir = root.join("target").join("ebpf");
    // A clean environment: the outer cargo's RUSTC, wrappers and flags are
    // for the host toolchain and must not leak into the BPF build.
    let status = Command::new(DEBIAN_CARGO)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("CARGO_HOME", &cargo_home)
        .env("RUSTC", DEBIAN_RUSTC)
        .env("RUSTC_BOOTSTRAP", "1")
        .current_dir(&ebpf)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "bpfel-unknown-none",
        ])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .unwrap_or_else(|e| panic!("running {DEBIAN_CARGO}: {e}"));
    if !status.success() {
        panic!("building the eBPF programs failed ({status}); see the output above");
    }
    let built = target_dir.join("bpfel-unknown-none/release/iotfence");
    std::fs::copy(&built, &object)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), object.display()));
}
