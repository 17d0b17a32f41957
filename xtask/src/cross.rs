//! Cross-building for arm64 routers: Debian's rustc (rustc-web, the one that
//! builds the eBPF crate) with Debian's prebuilt standard library for
//! aarch64 of exactly the same build, fetched into a private sysroot through
//! a private apt state (the system's sources and dpkg architectures stay as
//! they are), linked by gcc-aarch64-linux-gnu. The eBPF object is the same
//! on every architecture.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use crate::{
    root,
    sh::{output, run},
    step,
};

pub const TARGET: &str = "aarch64-unknown-linux-gnu";

/// The Debian suites the arm64 packages come from (bookworm's rustc-web is
/// in its security and updates suites).
const SUITES: [(&str, &str); 3] = [
    ("debian", "bookworm"),
    ("debian", "bookworm-updates"),
    ("debian-security", "bookworm-security"),
];

/// A private apt state for arm64 packages under `dir`.
pub struct ArmApt {
    config: PathBuf,
}

impl ArmApt {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        for d in [
            "state/lists/partial",
            "cache/archives/partial",
            "etc/preferences.d",
        ] {
            fs::create_dir_all(dir.join(d))?;
        }
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        let sources: String = SUITES
            .iter()
            .map(|(archive, suite)| {
                format!("deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/{archive} {suite} main\n")
            })
            .collect();
        fs::write(dir.join("etc/sources.list"), sources)?;
        let d = dir.display();
        let config = dir.join("apt.conf");
        fs::write(
            &config,
            format!(
                "Dir::State \"{d}/state\"; Dir::State::status \"{d}/state/status\"; Dir::Cache \"{d}/cache\";\n\
                 Dir::Etc::sourcelist \"{d}/etc/sources.list\"; Dir::Etc::sourceparts \"-\";\n\
                 Dir::Etc::preferencesparts \"{d}/etc/preferences.d\";\n\
                 APT::Architecture \"arm64\"; APT::Architectures {{ \"arm64\"; }};\n"
            ),
        )?;
        let apt = Self { config };
        run(apt.command("apt-get").args(["update", "-qq"]))?;
        Ok(apt)
    }

    fn command(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("APT_CONFIG", &self.config);
        c
    }

    /// The versions of `package` the suites offer.
    pub fn versions(&self, package: &str) -> anyhow::Result<Vec<String>> {
        let out = output(self.command("apt-cache").args(["madison", package]))?;
        Ok(out
            .lines()
            .filter_map(|l| l.split('|').nth(1).map(|v| v.trim().to_string()))
            .collect())
    }

    /// Downloads `package=version` into `into`; the .deb's path.
    pub fn download(&self, package: &str, version: &str, into: &Path) -> anyhow::Result<PathBuf> {
        fs::create_dir_all(into)?;
        run(self.command("apt-get").current_dir(into).args([
            "download",
            "-q",
            &format!("{package}={version}"),
        ]))?;
        let prefix = format!("{package}_");
        for e in fs::read_dir(into)? {
            let p = e?.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with("_arm64.deb") {
                return Ok(p);
            }
        }
        bail!(
            "apt-get download {package}={version} left no .deb in {}",
            into.display()
        )
    }
}

/// `target/cross/aarch64/sysroot`, holding Debian's aarch64 standard library
/// for this rustc (fetched once; the rustc version is its stamp).
pub fn sysroot() -> anyhow::Result<PathBuf> {
    let base = root().join("target/cross/aarch64");
    let sysroot = base.join("sysroot");
    let rustc = output(Command::new("/usr/bin/rustc").arg("--version"))?;
    let stamp = sysroot.join("rustc-version");
    let fetched = || fs::read_to_string(&stamp).ok().as_deref() == Some(rustc.as_str());
    if fetched() {
        return Ok(sysroot);
    }
    // The arm64 tests run in parallel: one fetches while the others wait
    // here (apt's own lock on the private state would fail them instead),
    // then find the stamp. Released when `lock` drops.
    fs::create_dir_all(&base)?;
    let lock = fs::File::create(base.join("fetch.lock"))?;
    lock.lock().context("locking the aarch64 sysroot fetch")?;
    if fetched() {
        return Ok(sysroot);
    }
    // "rustc 1.96.0 (ac68faa20 2026-05-25) ..." -> "1.96.0"
    let upstream = rustc
        .split_whitespace()
        .nth(1)
        .context("rustc --version")?
        .to_string();
    step(&format!(
        "fetching Debian's aarch64 standard library for rustc {upstream}"
    ));
    let apt = ArmApt::new(&base.join("apt"))?;
    let version = apt
        .versions("libstd-rust-web-dev")?
        .into_iter()
        .find(|v| v.starts_with(&format!("{upstream}+")))
        .with_context(|| {
            format!("no libstd-rust-web-dev:arm64 for rustc {upstream} in bookworm's suites")
        })?;
    let deb = apt.download("libstd-rust-web-dev", &version, &base.join("debs"))?;
    let x = base.join("extract");
    if x.exists() {
        fs::remove_dir_all(&x)?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x))?;
    let lib = sysroot.join("lib/rustlib");
    fs::create_dir_all(&lib)?;
    let dest = lib.join(TARGET);
    if dest.exists() {
        fs::remove_dir_all(&dest)?;
    }
    fs::rename(x.join("usr/lib/rustlib").join(TARGET), &dest)?;
    fs::remove_dir_all(&x)?;
    fs::write(&stamp, rustc)?;
    Ok(sysroot)
}

/// Builds `bins` ((package, binary)) in release mode for aarch64 into
/// `target/cross/<flavour>/`; `static_libc`: glibc linked in (a guest
/// without libraries), else dynamic (a Debian package, which depends on
/// libc6). Returns the directory holding the binaries.
pub fn build(bins: &[(&str, &str)], flavour: &str, static_libc: bool) -> anyhow::Result<PathBuf> {
    let sysroot = sysroot()?;
    let target_dir = root().join("target/cross").join(flavour);
    let mut flags = format!("--sysroot={}", sysroot.display());
    if static_libc {
        flags += " -C target-feature=+crt-static";
    }
    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.current_dir(root())
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC", "/usr/bin/rustc")
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS", flags)
        // Either would replace the per-target flags (and the sysroot).
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    step(&format!(
        "cross-building {} for {TARGET}",
        bins.iter().map(|(_, b)| *b).collect::<Vec<_>>().join(", ")
    ));
    run(&mut cmd)?;
    Ok(target_dir.join(TARGET).join("release"))
}
