//! Network namespaces for the lab: created with unique names, entered by
//! threads (setns, not `ip netns exec`, which would hide bpffs), deleted on
//! drop.

use std::{
    fs::File,
    io::Read,
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd,
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::privileged::{require_root, unique};

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        require_root();
        let name = unique(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// A veth pair: `name` here, `peer` in `other`.
    pub fn veth(&self, name: &str, peer: &str, other: &Netns) -> anyhow::Result<()> {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            &other.name,
        ])
    }

    /// `ip` commands in order, each a line of space-separated words
    /// (`"link set eth0 up"`): a topology read top to bottom.
    pub fn ips(&self, cmds: &[&str]) -> anyhow::Result<()> {
        for c in cmds {
            self.ip(&c.split(' ').collect::<Vec<_>>())
                .with_context(|| format!("ip {c} in {}", self.name))?;
        }
        Ok(())
    }

    /// Waits until no IPv6 address of the namespace is tentative (DAD done).
    pub fn wait_ipv6_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = Command::new("ip")
                .args(["-n", &self.name, "-6", "addr", "show", "tentative"])
                .output()?;
            if out.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "IPv6 addresses in {} still tentative after {timeout:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])
    }

    /// Runs a command in this namespace (`ip netns exec`, which also mounts
    /// the namespace's /sys); fails with its stderr.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .with_context(|| format!("running {args:?} in {}", self.name))?;
        if !out.status.success() {
            bail!(
                "{args:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// `ip -j [-s] link show dev` of `dev` in this namespace (the first
    /// and only object of the JSON array).
    pub fn link(&self, dev: &str, stats: bool) -> anyhow::Result<serde_json::Value> {
        let mut a = vec!["-n", self.name.as_str(), "-j"];
        if stats {
            a.push("-s");
        }
        a.extend(["link", "show", "dev", dev]);
        let out = Command::new("ip").args(&a).output()?;
        if !out.status.success() {
            bail!("ip {a:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v[0].take())
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let file = File::open(self.path())?;
        let h = thread::spawn(move || {
            enter_ns(&file).expect("setns");
            f()
        });
        h.join()
            .map_err(|_| anyhow::anyhow!("thread in {} panicked", self.name))
    }

    /// Starts `f` on a thread that has entered this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let file = File::open(self.path()).expect("opening the namespace");
        thread::spawn(move || {
            enter_ns(&file).expect("setns");
            f()
        })
    }

    /// Tries a TCP connection from inside this namespace; true if it was
    /// accepted and the server's greeting arrived.
    pub fn connect(&self, addr: &str, port: u16, timeout: Duration) -> bool {
        let ip: std::net::IpAddr = addr.parse().expect("an IP address");
        let target = SocketAddr::new(ip, port);
        self.run(move || {
            let Ok(mut s) = TcpStream::connect_timeout(&target, timeout) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(timeout));
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).is_ok() && &buf == b"hello"
        })
        .unwrap_or(false)
    }
}

/// Enters the network namespace of `file` (this thread, or a child before
/// exec).
pub fn enter_ns(file: &File) -> std::io::Result<()> {
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
