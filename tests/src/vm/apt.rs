//! A private apt state for one Debian release: its own source list, package
//! lists and cache under a directory of ours, so fetching another release's
//! kernel never touches the system's sources or lists. The mirror is the one
//! the system's apt already uses (read at run time, never hard-coded).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

/// Debian's archive keyring: it holds the bullseye, bookworm and trixie keys,
/// so the private sources are verified rather than `trusted=yes`.
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Debian suites a source's suite must start with to count as Debian's (so a
/// vendor repository such as `cloud-sdk-bookworm` is never taken as a mirror).
const CODENAMES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "stable",
    "oldstable",
    "testing",
    "unstable",
];

/// The system's Debian mirrors: the main archive and, when configured, the
/// security archive.
#[derive(Debug, Clone)]
pub struct Mirrors {
    pub main: String,
    pub security: Option<String>,
}

impl Mirrors {
    /// Reads `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.{list,sources}`.
    pub fn from_system() -> anyhow::Result<Self> {
        let mut texts = Vec::new();
        if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
            texts.push((false, t));
        }
        if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
            for e in dir.flatten() {
                let p = e.path();
                let deb822 = match p.extension().and_then(|x| x.to_str()) {
                    Some("sources") => true,
                    Some("list") => false,
                    _ => continue, // apt ignores other names (e.g. disabled files)
                };
                if let Ok(t) = fs::read_to_string(&p) {
                    texts.push((deb822, t));
                }
            }
        }
        let pairs: Vec<(String, String)> = texts
            .iter()
            .flat_map(|(deb822, t)| {
                if *deb822 {
                    deb822_pairs(t)
                } else {
                    one_line_pairs(t)
                }
            })
            .filter(|(_, suite)| {
                let base = suite.split('-').next().unwrap_or("");
                CODENAMES.contains(&base)
            })
            .collect();
        let pick = |security: bool| {
            pairs
                .iter()
                .find(|(_, s)| s.ends_with("-security") == security)
                .map(|(u, _)| u.trim_end_matches('/').to_owned())
        };
        let main = pick(false).context(
            "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/",
        )?;
        Ok(Self {
            main,
            security: pick(true),
        })
    }

    /// The source list for `codename`: main, updates and (if known) security.
    pub fn source_list(&self, codename: &str) -> String {
        let opts = if Path::new(KEYRING).exists() {
            format!("[signed-by={KEYRING}]")
        } else {
            // Without the keyring apt would refuse the sources outright.
            "[trusted=yes]".to_owned()
        };
        let mut s = format!(
            "deb {opts} {m} {codename} main\ndeb {opts} {m} {codename}-updates main\n",
            m = self.main
        );
        if let Some(sec) = &self.security {
            s += &format!("deb {opts} {sec} {codename}-security main\n");
        }
        s
    }
}

/// (URI, suite) of each `deb` line of a one-line-style list.
fn one_line_pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        // Drop an `[ option=value ... ]` block.
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest[..] {
            out.push((uri.to_owned(), suite.to_owned()));
        }
    }
    out
}

/// (URI, suite) of each `Types: deb` stanza of a deb822 `.sources` file.
fn deb822_pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect()
        };
        if !field("Types").iter().any(|t| t == "deb") || field("Enabled").iter().any(|e| e == "no")
        {
            continue;
        }
        for uri in field("URIs") {
            for suite in field("Suites") {
                out.push((uri.clone(), suite));
            }
        }
    }
    out
}

/// apt state rooted at one directory: `sources.list`, `lists/`, `cache/`.
pub struct PrivateApt {
    dir: PathBuf,
    /// Another architecture's packages (`arm64`), else the host's.
    arch: Option<&'static str>,
}

impl PrivateApt {
    pub fn new(dir: &Path, sources: &str) -> anyhow::Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        fs::write(dir.join("sources.list"), sources)?;
        Ok(Self {
            dir: dir.to_owned(),
            arch: None,
        })
    }

    /// This state for `arch`'s packages only (indexes and downloads).
    pub fn for_arch(mut self, arch: &'static str) -> Self {
        self.arch = Some(arch);
        self
    }

    /// The options that make apt use only this state (and no system pins).
    fn command(&self, tool: &str) -> Command {
        let d = &self.dir;
        let mut c = Command::new(tool);
        c.env("DEBIAN_FRONTEND", "noninteractive").args([
            "-q",
            &format!(
                "-oDir::Etc::sourcelist={}",
                d.join("sources.list").display()
            ),
            "-oDir::Etc::sourceparts=/dev/null",
            "-oDir::Etc::preferences=/dev/null",
            "-oDir::Etc::preferencesparts=/dev/null",
            &format!("-oDir::State::Lists={}", d.join("lists").display()),
            &format!("-oDir::Cache={}", d.join("cache").display()),
            // Mirrors may be snapshots whose Release files have expired.
            "-oAcquire::Check-Valid-Until=false",
            // Downloads land in our root-owned directory, not _apt's.
            "-oAPT::Sandbox::User=root",
        ]);
        if let Some(arch) = self.arch {
            c.arg(format!("-oAPT::Architecture={arch}"))
                .arg(format!("-oAPT::Architectures={arch}"));
        }
        c
    }

    pub fn update(&self) -> anyhow::Result<()> {
        output(self.command("apt-get").arg("update")).map(drop)
    }

    /// The first dependency of `package` whose name starts with `prefix`
    /// (how a metapackage such as `linux-image-cloud-amd64` names the
    /// current ABI's image), with that package's candidate version.
    pub fn resolve_dependency(
        &self,
        package: &str,
        prefix: &str,
    ) -> anyhow::Result<(String, String)> {
        let deps = output(self.command("apt-cache").args(["depends", package]))?;
        let name = deps
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends:"))
            .map(|d| d.trim().trim_matches(|c| c == '<' || c == '>'))
            .find(|d| d.starts_with(prefix))
            .with_context(|| format!("{package} depends on no {prefix}* package:\n{deps}"))?
            .to_owned();
        let version = self.candidate(&name)?;
        Ok((name, version))
    }

    /// The candidate version of `name`.
    pub fn candidate(&self, name: &str) -> anyhow::Result<String> {
        let policy = output(self.command("apt-cache").args(["policy", name]))?;
        policy
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(str::trim)
            .filter(|v| *v != "(none)")
            .map(str::to_owned)
            .with_context(|| format!("no candidate version of {name}:\n{policy}"))
    }

    /// Downloads `name=version` into `into`; returns the `.deb`'s path.
    pub fn download(&self, name: &str, version: &str, into: &Path) -> anyhow::Result<PathBuf> {
        output(
            self.command("apt-get")
                .current_dir(into)
                .args(["download", &format!("{name}={version}")]),
        )?;
        fs::read_dir(into)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let f = p.file_name().unwrap_or_default().to_string_lossy();
                f.starts_with(&format!("{name}_")) && f.ends_with(".deb")
            })
            .with_context(|| format!("apt-get download {name} left no .deb in {}", into.display()))
    }

    /// Downloads `packages` and everything they depend on into `into`, as
    /// apt resolves them for a system with nothing installed (an empty
    /// dpkg status of our own, no recommends); returns the `.deb`s. The
    /// state, dpkg lock and logs are ours too: the system's stay untouched.
    pub fn download_with_dependencies(
        &self,
        packages: &[&str],
        into: &Path,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let (state, log) = (self.dir.join("state"), self.dir.join("log"));
        for d in [&state, &log, &into.join("partial")] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let status = state.join("status");
        fs::write(&status, "")?;
        output(
            self.command("apt-get")
                .arg(format!("-oDir::State={}", state.display()))
                .arg(format!("-oDir::State::status={}", status.display()))
                .arg(format!("-oDir::Log={}", log.display()))
                .arg(format!("-oDir::Cache::Archives={}", into.display()))
                .args([
                    "-y",
                    "--download-only",
                    "--no-install-recommends",
                    "install",
                ])
                .args(packages),
        )?;
        let debs: Vec<PathBuf> = fs::read_dir(into)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        if debs.is_empty() {
            bail!("apt-get install --download-only {packages:?} left no .deb");
        }
        Ok(debs)
    }
}

/// Runs `cmd`, returning its stdout; a failure carries the command and stderr.
pub(crate) fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
