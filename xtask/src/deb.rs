//! `cargo xtask deb`: the Debian package, assembled from the release binary
//! and `dist/` and built with `dpkg-deb` (no debhelper: the tree is small
//! and every file's place is listed here once).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context;

use crate::{
    cargo, root,
    sh::{output, run},
    step,
};

/// The Debian revision of this packaging.
const REVISION: &str = "1";

/// Configuration files the admin edits: dpkg keeps their changes.
const CONFFILES: [(&str, &str); 2] = [
    ("dist/etc/iotfence.yaml", "etc/iotfence/iotfence.yaml"),
    ("dist/etc/site.yaml", "etc/iotfence/site.yaml"),
];

/// Other files: (source in the repository, place in the package, mode).
const FILES: &[(&str, &str, u32)] = &[
    (
        "dist/systemd/iotfence.service",
        "lib/systemd/system/iotfence.service",
        0o644,
    ),
    (
        "dist/debian/sysusers.conf",
        "usr/lib/sysusers.d/iotfence.conf",
        0o644,
    ),
    (
        "policies/policy.schema.json",
        "usr/share/iotfence/policy.schema.json",
        0o644,
    ),
    (
        "policies/site.example.yaml",
        "usr/share/iotfence/site.example.yaml",
        0o644,
    ),
    (
        "grafana/dashboards/iotfence.json",
        "usr/share/iotfence/grafana/iotfence.json",
        0o644,
    ),
    (
        "grafana/alerts.yaml",
        "usr/share/iotfence/prometheus/alerts.yaml",
        0o644,
    ),
    ("README.md", "usr/share/doc/iotfence/README.md", 0o644),
];

/// The machine a package is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    /// This machine's (`dpkg --print-architecture`).
    Host,
    /// 64-bit Arm routers (cross-built, see `cross`).
    Arm64,
}

/// Builds `target/deb/iotfence_<version>-<revision>_<arch>.deb`; returns
/// its path.
pub fn build(arch: Arch) -> anyhow::Result<PathBuf> {
    let root = root();
    // The host build also writes the man pages (it runs here).
    step("building the daemon (release)");
    cargo(&["build", "--release", "-p", "iotfence"])?;
    let host_bin = root.join("target/release/iotfence");
    let (arch, bin, strip) = match arch {
        Arch::Host => (
            output(Command::new("dpkg").arg("--print-architecture"))?,
            host_bin.clone(),
            "strip",
        ),
        Arch::Arm64 => (
            "arm64".to_string(),
            crate::cross::build(&[("iotfence", "iotfence")], "deb", false)?.join("iotfence"),
            "aarch64-linux-gnu-strip",
        ),
    };
    let version = format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"));
    let out = root.join("target/deb");
    let stage = out.join(format!("iotfence_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    step(&format!("assembling {}", stage.display()));

    let staged = stage.join("usr/bin/iotfence");
    mkdirs(&staged)?;
    run(Command::new(strip)
        .args(["--strip-unneeded", "--remove-section=.comment", "-o"])
        .arg(&staged)
        .arg(&bin))?;
    chmod(&staged, 0o755)?;
    for (from, to) in CONFFILES {
        install(&root.join(from), &stage.join(to), 0o644)?;
    }
    for (from, to, mode) in FILES {
        install(&root.join(from), &stage.join(to), *mode)?;
    }
    // The vendor library: every profile and its endpoint notes.
    let vendors = root.join("policies/vendors");
    for e in fs::read_dir(&vendors)? {
        let p = e?.path();
        let name = p.file_name().unwrap();
        install(
            &p,
            &stage.join("usr/share/iotfence/vendors").join(name),
            0o644,
        )?;
    }
    // Man pages, generated from the command line's own definition.
    let man = stage.join("usr/share/man/man1");
    fs::create_dir_all(&man)?;
    run(Command::new(&host_bin).arg("man").arg(&man))?;
    for e in fs::read_dir(&man)? {
        gzip(&e?.path())?;
    }
    let doc = stage.join("usr/share/doc/iotfence");
    fs::write(doc.join("copyright"), COPYRIGHT)?;
    let overrides = stage.join("usr/share/lintian/overrides/iotfence");
    mkdirs(&overrides)?;
    fs::write(&overrides, LINTIAN_OVERRIDES)?;
    let changelog = doc.join("changelog.Debian");
    fs::write(&changelog, changelog_text(&version)?)?;
    gzip(&changelog)?;
    gzip(&doc.join("README.md"))?;

    let debian = stage.join("DEBIAN");
    fs::create_dir_all(&debian)?;
    for script in ["postinst", "prerm", "postrm"] {
        install(
            &root.join("dist/debian").join(script),
            &debian.join(script),
            0o755,
        )?;
    }
    let conffiles: String = CONFFILES.iter().map(|(_, to)| format!("/{to}\n")).collect();
    fs::write(debian.join("conffiles"), conffiles)?;
    fs::write(debian.join("md5sums"), md5sums(&stage)?)?;
    let installed_kib = du_kib(&stage)?;
    fs::write(
        debian.join("control"),
        control(&version, &arch, installed_kib),
    )?;

    let deb = out.join(format!("iotfence_{version}_{arch}.deb"));
    step(&format!("building {}", deb.display()));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&stage)
        .arg(&deb))?;
    Ok(deb)
}

fn control(version: &str, arch: &str, installed_kib: u64) -> String {
    format!(
        "Package: iotfence\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: iotfence developers <iotfence@example.org>\n\
         Installed-Size: {installed_kib}\n\
         Depends: libc6 (>= 2.34), libgcc-s1 (>= 4.2), systemd\n\
         Recommends: dnsmasq | unbound\n\
         Section: net\n\
         Priority: optional\n\
         Description: eBPF egress firewall for the IoT VLANs of Linux routers\n \
         iotfence turns IoT vendors' firewall requirements (domains, ports,\n \
         protocols) into per-device allowlists and enforces them in the kernel\n \
         with XDP or TC on the IoT-facing interface. Allowed domain names\n \
         become allowed addresses as the devices resolve them: DNS answers are\n \
         held in the kernel until the daemon has learned them.\n \
         .\n \
         The package ships the daemon, a systemd unit, the vendor profile\n \
         library, the policy JSON Schema and a Grafana dashboard.\n"
    )
}

/// Findings that do not apply to a package built outside Debian's archive.
const LINTIAN_OVERRIDES: &str = "\
# Built by the project (cargo xtask deb), not uploaded to Debian: there is
# no ITP bug to close.
iotfence: initial-upload-closes-no-bugs
";

const COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: iotfence
Source: https://iotfence.example.org/

Files: *
Copyright: 2026 iotfence developers
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the \"License\"); you may
 not use this file except in compliance with the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0
 can be found in \"/usr/share/common-licenses/Apache-2.0\".
";

fn changelog_text(version: &str) -> anyhow::Result<String> {
    // The last commit's date, so the package is the same for the same tree.
    let date = output(Command::new("git").args(["log", "-1", "--format=%aD"]))
        .unwrap_or_else(|_| "Thu, 03 Dec 2026 00:00:00 +0000".into());
    Ok(format!(
        "iotfence ({version}) unstable; urgency=medium\n\n  \
         * Built from the iotfence repository (cargo xtask deb).\n\n \
         -- iotfence developers <iotfence@example.org>  {date}\n"
    ))
}

fn mkdirs(file: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(file.parent().unwrap())
        .with_context(|| format!("creating {}", file.parent().unwrap().display()))
}

fn install(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    mkdirs(to)?;
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    chmod(to, mode)
}

fn chmod(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    Ok(fs::set_permissions(path, fs::Permissions::from_mode(mode))?)
}

/// gzip -9n (no name or time stamp: reproducible), replacing the file.
fn gzip(path: &Path) -> anyhow::Result<()> {
    run(Command::new("gzip").args(["-9nf"]).arg(path))
}

/// DEBIAN/md5sums: every regular file outside DEBIAN/, relative paths.
fn md5sums(stage: &Path) -> anyhow::Result<String> {
    let mut files = Vec::new();
    walk(stage, &mut files)?;
    files.retain(|f| !f.starts_with(stage.join("DEBIAN")));
    files.sort();
    let mut cmd = Command::new("md5sum");
    cmd.current_dir(stage);
    for f in &files {
        cmd.arg(f.strip_prefix(stage).unwrap());
    }
    output(&mut cmd).map(|s| s + "\n")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn du_kib(stage: &Path) -> anyhow::Result<u64> {
    let mut files = Vec::new();
    walk(stage, &mut files)?;
    let bytes: u64 = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    Ok(bytes.div_ceil(1024))
}
