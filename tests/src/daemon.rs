//! The `iotfence` daemon as the lab runs it: spawned inside the router's
//! network namespace, its output collected, stopped by signal.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::netns::{enter_ns, Netns};

/// The daemon binary built next to the test executable (target/<profile>/).
pub fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IOTFENCE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("iotfence");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// A running `iotfence run`, its output collected line by line.
pub struct Daemon {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// The threads reading stderr and stdout (joined by `wait`).
    readers: Vec<thread::JoinHandle<()>>,
}

fn collect(
    r: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[iotfence] {line}");
            }
            sink.lock().unwrap().push(line);
        }
    })
}

/// How long a start may take: inside the kernel matrix's guests (qemu
/// TCG, `IOTFENCE_TCG` set) everything runs 10-30x slower, and 5.10's
/// verifier alone takes seconds per program there.
fn ready_timeout() -> Duration {
    if std::env::var_os("IOTFENCE_TCG").is_some() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(20)
    }
}

impl Daemon {
    pub fn spawn(router: &Netns, config: &Path) -> anyhow::Result<Self> {
        let ns = File::open(router.path())?;
        let mut cmd = Command::new(daemon_binary());
        cmd.args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        // Enter only the network namespace: `ip netns exec` would also
        // remount /sys and hide the bpffs holding the pins.
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the test process, even when that is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                enter_ns(&ns)
            });
        }
        let mut child = cmd.spawn().context("starting iotfence")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(
                child.stderr.take().unwrap(),
                stderr.clone(),
                std::env::var_os("IOTFENCE_LAB_ECHO").is_some(),
            ),
            collect(child.stdout.take().unwrap(), stdout.clone(), false),
        ];
        Ok(Self {
            child,
            stderr,
            stdout,
            readers,
        })
    }

    pub fn start(router: &Netns, config: &Path) -> anyhow::Result<Self> {
        let mut d = Self::spawn(router, config)?;
        let timeout = ready_timeout();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if d.stderr.lock().unwrap().iter().any(|l| l.contains("ready")) {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                bail!(
                    "iotfence exited ({status}) before ready:\n{}",
                    d.stderr.lock().unwrap().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        d.kill();
        bail!(
            "iotfence not ready within {timeout:?}:\n{}",
            d.stderr.lock().unwrap().join("\n")
        )
    }

    /// Waits for the process to exit and for everything it wrote to be
    /// read (the readers may still hold its last lines when it exits).
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ok(status)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Process id, for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGHUP and waits (bounded) for the daemon's verdict on the
    /// policy: true when it was reloaded, false when it was rejected.
    pub fn reload(&self) -> anyhow::Result<bool> {
        Ok(self.reload_polled(Duration::from_millis(10))?.0)
    }

    /// Like `reload`, reading the log every `poll`; also returns the time
    /// from the signal to the verdict (within `poll`).
    pub fn reload_polled(&self, poll: Duration) -> anyhow::Result<(bool, Duration)> {
        let seen = |s: &str| {
            self.stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(s))
                .count()
        };
        let (ok, bad) = (seen("policy reloaded"), seen("reload rejected"));
        let t0 = Instant::now();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
        let deadline = t0 + Duration::from_secs(10);
        while Instant::now() < deadline {
            if seen("policy reloaded") > ok {
                return Ok((true, t0.elapsed()));
            }
            if seen("reload rejected") > bad {
                return Ok((false, t0.elapsed()));
            }
            thread::sleep(poll);
        }
        bail!("no reload verdict within 10 s:\n{}", self.log())
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Ok(s);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!("iotfence did not stop within 10 s of SIGTERM")
    }
}
