//! Programs for a guest of another architecture (arm64), which cannot run
//! the host's: the release's own Debian packages and everything apt says
//! they depend on, fetched through the kernel's private apt state and
//! extracted into one root under `target/kernels/<release>-<arch>/userland/`
//! (cached like the kernel; `IOTFENCE_VM_REFRESH=1` fetches again). An
//! executable goes into the guest at its packaged path with its program
//! interpreter and the libraries its `DT_NEEDED` entries name, looked up as
//! that architecture's loader does (the host's ldd cannot run its code).

use std::{
    collections::HashSet,
    fs,
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use super::{
    apt::output,
    kernels::{Kernel, Lock},
};

/// Extracted packages of one architecture: a guest's `/`, on the host.
#[derive(Debug, Clone)]
pub struct Userland {
    pub root: PathBuf,
    /// What the guest's loader searches, in its order (the guest has no
    /// `ld.so.cache`; Debian's loader has the multiarch directories built in).
    lib_dirs: Vec<PathBuf>,
}

impl Kernel {
    /// `packages` of this kernel's release and architecture with their
    /// dependencies, extracted (or found in the cache).
    pub fn userland(self, packages: &[&str]) -> anyhow::Result<Userland> {
        self.userland_inner(packages).with_context(|| {
            format!(
                "fetching {packages:?} for Debian {} ({}, {})",
                self.debian(),
                self.codename(),
                self.arch()
            )
        })
    }

    fn userland_inner(self, packages: &[&str]) -> anyhow::Result<Userland> {
        let triplet = match self.arch() {
            "arm64" => "aarch64-linux-gnu",
            "amd64" => "x86_64-linux-gnu",
            a => bail!("no multiarch triplet known for {a}"),
        };
        let mut names = packages.to_vec();
        names.sort();
        let base = self.cache_dir().join("userland");
        let done = base.join(names.join("+"));
        let userland = Userland {
            root: done.join("root"),
            lib_dirs: ["/lib/", "/usr/lib/"]
                .iter()
                .flat_map(|d| [format!("{d}{triplet}"), d.to_string()])
                .map(PathBuf::from)
                .collect(),
        };
        fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        // The release's lock: its apt state is the kernel fetch's too.
        let _lock = Lock::new(&self.cache_dir().join("lock"))?;
        let refresh = std::env::var_os("IOTFENCE_VM_REFRESH").is_some_and(|v| v == "1");
        if !refresh && done.join("packages").exists() {
            return Ok(userland);
        }
        // Under the lock, any tmp-* is a dead process's leftover.
        for e in fs::read_dir(&base)?.flatten() {
            if e.file_name().to_string_lossy().starts_with("tmp-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let tmp = base.join(format!("tmp-{}", std::process::id()));
        let debs = self
            .apt()?
            .download_with_dependencies(packages, &tmp.join("debs"))?;
        let mut list = String::new();
        for deb in &debs {
            output(
                Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(deb)
                    .arg(tmp.join("root")),
            )
            .with_context(|| format!("extracting {}", deb.display()))?;
            list += &format!(
                "{}\n",
                deb.file_name().unwrap_or_default().to_string_lossy()
            );
        }
        fs::remove_dir_all(tmp.join("debs"))?;
        fs::write(tmp.join("packages"), list)?;
        // Renamed into place whole: a crash never leaves half a root there.
        if done.exists() {
            fs::remove_dir_all(&done)?;
        }
        fs::rename(&tmp, &done).with_context(|| format!("renaming into {}", done.display()))?;
        Ok(userland)
    }
}

impl Userland {
    /// `exe` (a guest path as packaged, e.g. `/sbin/ip`), its program
    /// interpreter and every library it loads, transitively: the guest
    /// paths to copy from the root.
    pub(super) fn closure(&self, exe: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut out = vec![exe.to_owned()];
        let mut seen = HashSet::from([exe.to_owned()]);
        let mut i = 0;
        while let Some(guest) = out.get(i).cloned() {
            i += 1;
            let elf = self.real(&guest)?;
            let (interpreter, needed) =
                dynamic(&elf).with_context(|| format!("reading {}", elf.display()))?;
            let mut next: Vec<PathBuf> = interpreter.into_iter().collect();
            for soname in needed {
                next.push(self.library(&soname).with_context(|| {
                    format!(
                        "{soname}, needed by {}, is in none of the packages",
                        guest.display()
                    )
                })?);
            }
            for n in next {
                if seen.insert(n.clone()) {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// The guest path of library `soname`: the first library directory
    /// holding it.
    fn library(&self, soname: &str) -> anyhow::Result<PathBuf> {
        for dir in &self.lib_dirs {
            let guest = dir.join(soname);
            if self.real(&guest)?.is_file() {
                return Ok(guest);
            }
        }
        bail!("not in {:?}", self.lib_dirs)
    }

    /// The host path of guest path `guest`, symlinks (absolute ones too)
    /// followed inside the root.
    fn real(&self, guest: &Path) -> anyhow::Result<PathBuf> {
        let mut path = guest.to_owned();
        'again: for _ in 0..40 {
            let comps: Vec<Component> = path.components().collect();
            let mut cur = PathBuf::from("/");
            for (i, c) in comps.iter().enumerate() {
                match c {
                    Component::ParentDir => {
                        cur.pop();
                        continue;
                    }
                    Component::Normal(n) => cur.push(n),
                    _ => continue,
                }
                let host = self.host(&cur);
                if host.is_symlink() {
                    let mut next = cur
                        .parent()
                        .unwrap_or(Path::new("/"))
                        .join(host.read_link()?);
                    next.extend(&comps[i + 1..]);
                    path = next;
                    continue 'again;
                }
            }
            return Ok(self.host(&cur));
        }
        bail!("too many symlinks in {}", guest.display())
    }

    fn host(&self, guest: &Path) -> PathBuf {
        self.root.join(guest.strip_prefix("/").unwrap_or(guest))
    }
}

/// An ELF file's program interpreter and `DT_NEEDED` sonames (`readelf`
/// reads any architecture's ELF).
fn dynamic(elf: &Path) -> anyhow::Result<(Option<PathBuf>, Vec<String>)> {
    let text = output(Command::new("readelf").arg("-dlW").arg(elf))
        .context("running readelf (binutils)")?;
    let bracketed = |l: &str, after: &str| {
        let rest = &l[l.find(after)? + after.len()..];
        Some(rest[..rest.find(']')?].to_string())
    };
    if let Some(l) = text
        .lines()
        .find(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
    {
        // The loader would search there first; this walk does not.
        bail!(
            "has a run path, which the library walk does not follow: {}",
            l.trim()
        );
    }
    let interpreter = text
        .lines()
        .find_map(|l| bracketed(l, "[Requesting program interpreter: "))
        .map(PathBuf::from);
    let needed = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| bracketed(l, "Shared library: ["))
        .collect();
    Ok((interpreter, needed))
}
