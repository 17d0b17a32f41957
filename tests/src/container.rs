//! A throw-away systemd machine: `systemd-nspawn --boot` over a
//! copy-on-write view of this machine's own root (a bind mount with a tmpfs
//! overlay: what the guest installs or writes is gone when it stops), in a
//! lab namespace's network. systemd runs as its PID 1, so units, sandboxing,
//! the watchdog and `systemd-analyze security` are the real ones.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::{
    netns::Netns,
    privileged::{require_root, unique},
};

pub struct Container {
    child: Child,
    /// The guest's PID 1 (systemd), as this machine sees it.
    leader: u32,
    pub name: String,
    /// Dropped after the guest has stopped (fields drop in order).
    _root: BoundRoot,
}

/// This machine's root bound (non-recursively) at a fresh directory: the
/// image the guest boots, read through a tmpfs overlay. Unbound on drop.
struct BoundRoot(PathBuf);

impl BoundRoot {
    fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{name}-root"));
        std::fs::create_dir_all(&dir)?;
        if let Err(e) = run(Command::new("mount").arg("--bind").arg("/").arg(&dir)) {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        Ok(Self(dir))
    }
}

impl Drop for BoundRoot {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        // Empty once unbound; never a recursive removal of a bound root.
        let _ = std::fs::remove_dir(&self.0);
    }
}

impl Container {
    /// Boots a guest in `net`'s network namespace with the capabilities
    /// iotfence needs, and waits (bounded) until systemd has finished
    /// starting up. `binds`: (host directory, guest directory), read-only.
    pub fn boot(net: &Netns, binds: &[(&Path, &str)]) -> anyhow::Result<Self> {
        require_root();
        let name = unique("iotf");
        let root = BoundRoot::new(&name)?;
        let log = std::fs::File::create(console_path(&name))?;
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("--quiet")
            .arg("--volatile=overlay")
            .arg("-D")
            .arg(&root.0)
            .arg("--boot")
            .arg(format!("--machine={name}"))
            // No machined on this host, and the guest is this host's image.
            .args(["--register=no", "--keep-unit", "--link-journal=no"])
            .arg(format!("--network-namespace-path={}", net.path().display()))
            .arg("--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN,CAP_NET_RAW,CAP_SYS_ADMIN")
            .arg("--system-call-filter=bpf")
            .arg("--console=pipe");
        for (host, guest) in binds {
            cmd.arg(format!("--bind-ro={}:{guest}", host.display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting systemd-nspawn (package systemd-container)")?;
        let mut c = Self {
            child,
            leader: 0,
            name,
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.leader == 0 {
            if Instant::now() > deadline {
                bail!("no guest PID 1 after 60 s: {}", c.console());
            }
            if let Some(status) = c.child.try_wait()? {
                bail!("systemd-nspawn exited ({status}): {}", c.console());
            }
            c.leader = child_of(c.child.id()).unwrap_or(0);
            thread::sleep(Duration::from_millis(100));
        }
        // `--wait` returns once start-up is over: running, or degraded when
        // some unit of this host's image does not apply in a container.
        loop {
            let state = c.sh("systemctl is-system-running --wait")?;
            let text = String::from_utf8_lossy(&state.stdout).trim().to_string();
            if text == "running" || text == "degraded" {
                break;
            }
            if Instant::now() > deadline {
                bail!("guest systemd is {text:?} after 60 s: {}", c.console());
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(c)
    }

    /// Runs `script` with `sh -c` inside the guest (all its namespaces).
    pub fn sh(&self, script: &str) -> anyhow::Result<Output> {
        Command::new("nsenter")
            .args([
                "-t",
                &self.leader.to_string(),
                "-a",
                "--",
                "sh",
                "-c",
                script,
            ])
            .output()
            .context("nsenter")
    }

    /// `sh`, failing with the script's output unless it exits 0; returns
    /// its stdout.
    pub fn ok(&self, script: &str) -> anyhow::Result<String> {
        let out = self.sh(script)?;
        if !out.status.success() {
            bail!(
                "guest `{script}` exited {}:\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What the guest's console printed so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(console_path(&self.name)).unwrap_or_default()
    }
}

fn console_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{name}.console"))
}

/// The first child of `pid` (nspawn's child is the guest's PID 1).
fn child_of(pid: u32) -> Option<u32> {
    let task = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(task)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGTERM asks nspawn to power the guest off; bounded, then killed.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(console_path(&self.name));
        // Then `_root` is unbound.
    }
}
