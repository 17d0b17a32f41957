//! The Debian router kernels iotfence must run on, fetched once into
//! `target/kernels/` and reused: a second fetch reads the cache and touches
//! no network. Set `IOTFENCE_VM_REFRESH=1` to look for a newer kernel.

use std::{
    fs::{self, File},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use super::apt::{output, Mirrors, PrivateApt};

/// A Debian release's cloud kernel (the one for VMs and small routers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Debian 11 bullseye, Linux 5.10.
    Bullseye,
    /// Debian 12 bookworm, Linux 6.1.
    Bookworm,
    /// Debian 13 trixie, Linux 6.12.
    Trixie,
    /// Debian 12 bookworm's arm64 cloud kernel, Linux 6.1 (arm64 routers).
    BookwormArm64,
}

/// A kernel ready to boot: its image and its modules' directory.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub kernel: Kernel,
    /// The Debian package, e.g. `linux-image-6.1.0-41-cloud-amd64`.
    pub package: String,
    /// Its Debian version, e.g. `6.1.158-1`.
    pub version: String,
    /// What `uname -r` prints in the guest, e.g. `6.1.0-41-cloud-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `[usr/]lib/modules/<release>/` of the extracted package.
    pub modules: PathBuf,
    /// The guest architecture's busybox, for a kernel that is not the
    /// host's architecture (else the host's `/bin/busybox` goes in).
    pub busybox: Option<PathBuf>,
}

impl Kernel {
    pub const ALL: [Kernel; 3] = [Kernel::Bullseye, Kernel::Bookworm, Kernel::Trixie];

    pub fn codename(self) -> &'static str {
        match self {
            Kernel::Bullseye => "bullseye",
            Kernel::Bookworm | Kernel::BookwormArm64 => "bookworm",
            Kernel::Trixie => "trixie",
        }
    }

    pub fn debian(self) -> u32 {
        match self {
            Kernel::Bullseye => 11,
            Kernel::Bookworm | Kernel::BookwormArm64 => 12,
            Kernel::Trixie => 13,
        }
    }

    /// Debian's name for the kernel's architecture.
    pub fn arch(self) -> &'static str {
        match self {
            Kernel::BookwormArm64 => "arm64",
            _ => "amd64",
        }
    }

    /// Where this kernel is cached under `target/kernels/`.
    fn cache_name(self) -> String {
        match self.arch() {
            "amd64" => self.codename().to_string(),
            arch => format!("{}-{arch}", self.codename()),
        }
    }

    /// `target/kernels/<release>[-<arch>]/`: the kernel, its apt state and
    /// packages for the guest; `lock` there serializes their fetches.
    pub(super) fn cache_dir(self) -> PathBuf {
        cache_root().join(self.cache_name())
    }

    /// The release's private apt state, for the kernel's architecture, with
    /// fresh package lists (call with the `cache_dir` lock held).
    pub(super) fn apt(self) -> anyhow::Result<PrivateApt> {
        let mut apt = PrivateApt::new(
            &self.cache_dir().join("apt"),
            &Mirrors::from_system()?.source_list(self.codename()),
        )?;
        if self.arch() != "amd64" {
            apt = apt.for_arch(self.arch());
        }
        apt.update().context("apt-get update (private state)")?;
        Ok(apt)
    }

    /// The upstream series the release ships, checked against what apt finds.
    pub fn series(self) -> &'static str {
        match self {
            Kernel::Bullseye => "5.10",
            Kernel::Bookworm | Kernel::BookwormArm64 => "6.1",
            Kernel::Trixie => "6.12",
        }
    }

    /// Fetches (or finds in the cache) the newest cloud kernel of the release.
    pub fn fetch(self) -> anyhow::Result<Fetched> {
        self.fetch_inner().with_context(|| {
            format!(
                "fetching the Debian {} ({}) kernel",
                self.debian(),
                self.codename()
            )
        })
    }

    fn fetch_inner(self) -> anyhow::Result<Fetched> {
        let dir = self.cache_dir();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // One fetch per release at a time, across test threads and processes.
        let _lock = Lock::new(&dir.join("lock"))?;
        let current = dir.join("current");
        let refresh = std::env::var_os("IOTFENCE_VM_REFRESH").is_some_and(|v| v == "1");
        if !refresh {
            if let Ok(name) = fs::read_to_string(&current) {
                if let Ok(f) = self.load(&dir.join(name.trim())) {
                    return Ok(f);
                }
            }
        }
        let apt = self.apt()?;
        let meta = format!("linux-image-cloud-{}", self.arch());
        let (package, version) = apt
            .resolve_dependency(&meta, "linux-image-")
            .with_context(|| format!("resolving {meta}"))?;
        let name = format!("{package}_{version}");
        let done = dir.join(&name);
        if !done.exists() {
            // Build in a temporary directory, then rename: a crash never
            // leaves a half-extracted kernel under the final name.
            // Under the lock, any tmp-* is a dead process's leftover.
            for e in fs::read_dir(&dir)?.flatten() {
                if e.file_name().to_string_lossy().starts_with("tmp-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
            let tmp = dir.join(format!("tmp-{}", std::process::id()));
            fs::create_dir_all(&tmp)?;
            let deb = apt.download(&package, &version, &tmp)?;
            output(
                Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(&deb)
                    .arg(tmp.join("root")),
            )
            .with_context(|| format!("extracting {}", deb.display()))?;
            fs::remove_file(&deb)?;
            if self.arch() != "amd64" {
                // The host's busybox cannot run there: the guest's own.
                let (bb, bb_version) = ("busybox-static", apt.candidate("busybox-static")?);
                let deb = apt.download(bb, &bb_version, &tmp)?;
                output(
                    Command::new("dpkg-deb")
                        .arg("-x")
                        .arg(&deb)
                        .arg(tmp.join("busybox")),
                )
                .with_context(|| format!("extracting {}", deb.display()))?;
                fs::remove_file(&deb)?;
            }
            fs::write(tmp.join("package"), format!("{package}\n{version}\n"))?;
            fs::rename(&tmp, &done).with_context(|| format!("renaming into {}", done.display()))?;
        }
        let f = self.load(&done)?;
        fs::write(dir.join("current.tmp"), &name)?;
        fs::rename(dir.join("current.tmp"), &current)?;
        Ok(f)
    }

    /// Reads an extracted package: `package` (name, version) and `root/`.
    fn load(self, dir: &Path) -> anyhow::Result<Fetched> {
        let meta = fs::read_to_string(dir.join("package"))?;
        let mut lines = meta.lines();
        let (Some(package), Some(version)) = (lines.next(), lines.next()) else {
            bail!("malformed {}", dir.join("package").display());
        };
        let root = dir.join("root");
        // trixie's packages are usrmerged: usr/lib/modules, not lib/modules.
        let mods = ["lib/modules", "usr/lib/modules"]
            .map(|d| root.join(d))
            .into_iter()
            .find(|d| d.is_dir())
            .with_context(|| format!("{package} has no lib/modules or usr/lib/modules"))?;
        let release = only_entry(&mods)?;
        let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
        if !vmlinuz.exists() {
            bail!("{} has no {}", package, vmlinuz.display());
        }
        if !release.starts_with(&format!("{}.", self.series())) {
            bail!(
                "{package} is Linux {release}, not the {} series",
                self.series()
            );
        }
        Ok(Fetched {
            kernel: self,
            package: package.to_owned(),
            version: version.to_owned(),
            modules: mods.join(&release),
            release,
            vmlinuz,
            busybox: Some(dir.join("busybox/bin/busybox")).filter(|p| p.exists()),
        })
    }
}

/// `<repository>/target/kernels`.
pub fn cache_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the repository")
        .join("target/kernels")
}

fn only_entry(dir: &Path) -> anyhow::Result<String> {
    let names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match &names[..] {
        [one] => Ok(one.clone()),
        _ => bail!("expected one kernel in {}, found {names:?}", dir.display()),
    }
}

/// An exclusive `flock` held until drop.
pub(super) struct Lock {
    _held: File,
}

impl Lock {
    pub(super) fn new(path: &Path) -> anyhow::Result<Self> {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        // SAFETY: flock on a descriptor we own; blocks until it is ours.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context(format!("locking {}", path.display()));
        }
        Ok(Self { _held: f })
    }
}
