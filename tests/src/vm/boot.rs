//! Boots a fetched kernel under `qemu-system-x86_64 -accel tcg` (KVM is not
//! there, or may hang) with the guest's initramfs, runs one command, and
//! reads its exit status from a marker on the serial console.

use std::{
    fs::File,
    io::{BufWriter, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use super::{
    cpio::Tree,
    initramfs::{self, BUSYBOX, SHELL},
    kernels::{cache_root, Lock},
    modules,
    userland::Userland,
    Fetched,
};
use crate::privileged::{unique, TempDir};

pub const QEMU: &str = "qemu-system-x86_64";
/// For arm64 kernels (Debian's qemu-system-arm).
pub const QEMU_ARM64: &str = "qemu-system-aarch64";
/// Generous for TCG: a bare boot takes seconds, a daemon start tens of them.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(240);
/// What `/init` loads: what iotfence attaches with (veth for test links,
/// clsact + cls_bpf for the TC fallback).
pub const MODULES: &[&str] = &["veth", "sch_ingress", "cls_bpf"];

enum Item {
    Host(PathBuf),
    Exe(PathBuf),
    /// An executable without its debug sections: test and daemon binaries
    /// of a debug build are ~100 MB each, mostly DWARF, which a guest would
    /// hold in RAM for nothing.
    Stripped(PathBuf),
    /// A statically linked executable, as it is (another architecture's:
    /// neither `ldd` nor the host's `objcopy` can read it).
    Static(PathBuf),
    Bytes(PathBuf, u32, Vec<u8>),
    /// A guest path in another architecture's packages, with the loader
    /// and libraries it needs from there.
    Userland(Userland, PathBuf),
}

/// A guest to boot: a kernel plus the files and modules it needs.
pub struct Guest {
    kernel: Fetched,
    items: Vec<Item>,
    modules: Vec<String>,
    append: Vec<String>,
}

/// How a boot ended.
#[derive(Debug)]
pub struct Outcome {
    /// The command's exit status.
    pub status: i32,
    /// Everything on the serial console, boot messages included.
    pub console: String,
    /// What the command printed (between the start and exit markers).
    pub output: String,
    /// From starting qemu to its exit (not counting the wait for another
    /// guest to finish).
    pub elapsed: Duration,
}

impl Guest {
    pub fn new(kernel: &Fetched) -> Self {
        let items = match &kernel.busybox {
            // Another architecture: its own busybox is the shell too.
            Some(bb) => vec![Item::Static(bb.clone())],
            None => vec![Item::Exe(BUSYBOX.into()), Item::Exe(SHELL.into())],
        };
        Self {
            kernel: kernel.clone(),
            items,
            modules: MODULES.iter().map(|m| m.to_string()).collect(),
            append: Vec::new(),
        }
    }

    /// A statically linked executable (e.g. cross-built for the guest's
    /// architecture) at `stripped_path(host)`, as it is.
    pub fn static_exe(mut self, host: impl Into<PathBuf>) -> Self {
        self.items.push(Item::Static(host.into()));
        self
    }

    /// A host file (or directory) at the same path in the guest.
    pub fn file(mut self, host: impl Into<PathBuf>) -> Self {
        self.items.push(Item::Host(host.into()));
        self
    }

    /// A host executable at the same path, with its shared libraries.
    pub fn exe(mut self, host: impl Into<PathBuf>) -> Self {
        self.items.push(Item::Exe(host.into()));
        self
    }

    /// Like `exe`, without debug information (`objcopy --strip-debug`), at
    /// `stripped_path(host)` in the guest: build outputs may lie under a
    /// directory the guest mounts over (a clone in /tmp, say).
    pub fn exe_stripped(mut self, host: impl Into<PathBuf>) -> Self {
        self.items.push(Item::Stripped(host.into()));
        self
    }

    /// Where `exe_stripped` puts `host` in the guest.
    pub fn stripped_path(host: &std::path::Path) -> PathBuf {
        PathBuf::from("/iotfence-vm/bin").join(host.file_name().unwrap_or_default())
    }

    /// An executable of `userland` (the guest architecture's packages,
    /// `Kernel::userland`) at its packaged path, e.g. `/sbin/ip`, with its
    /// loader and libraries at theirs.
    pub fn userland_exe(mut self, userland: &Userland, path: impl Into<PathBuf>) -> Self {
        self.items
            .push(Item::Userland(userland.clone(), path.into()));
        self
    }

    /// A file made up by the test (e.g. a config), at `guest` path.
    pub fn bytes(mut self, guest: impl Into<PathBuf>, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        self.items
            .push(Item::Bytes(guest.into(), mode, data.into()));
        self
    }

    /// One more module to load (with its dependencies).
    pub fn module(mut self, name: &str) -> Self {
        self.modules.push(name.to_owned());
        self
    }

    /// One more kernel command-line argument.
    pub fn append(mut self, arg: &str) -> Self {
        self.append.push(arg.to_owned());
        self
    }

    /// Boots, runs `command` (a shell command line) and powers off; kills
    /// qemu after `timeout`. An error means the guest never reported a status.
    pub fn run(&self, command: &str, timeout: Duration) -> anyhow::Result<Outcome> {
        let k = &self.kernel;
        self.run_inner(command, timeout)
            .with_context(|| format!("booting Debian {} ({})", k.kernel.debian(), k.release))
    }

    fn run_inner(&self, command: &str, timeout: Duration) -> anyhow::Result<Outcome> {
        let scratch = TempDir::new("iotfence-vm")?;
        let nonce = unique("n");
        let mut tree = Tree::default();
        for item in &self.items {
            match item {
                Item::Host(p) => initramfs::add_host(&mut tree, p)?,
                Item::Exe(p) => {
                    for lib in initramfs::libraries(p)? {
                        initramfs::add_host(&mut tree, &lib)?;
                    }
                    initramfs::add_host(&mut tree, p)?;
                }
                Item::Stripped(p) => {
                    for lib in initramfs::libraries(p)? {
                        initramfs::add_host(&mut tree, &lib)?;
                    }
                    let out = scratch.join(unique("stripped"));
                    let status = Command::new("objcopy")
                        .arg("--strip-debug")
                        .arg(p)
                        .arg(&out)
                        .status()
                        .context("running objcopy (binutils)")?;
                    if !status.success() {
                        bail!("objcopy --strip-debug {} failed ({status})", p.display());
                    }
                    tree.file(&Self::stripped_path(p), 0o755, std::fs::read(&out)?);
                }
                Item::Static(p) => {
                    // The guest's busybox goes where init expects busybox.
                    let at = if Some(p) == self.kernel.busybox.as_ref() {
                        PathBuf::from(BUSYBOX)
                    } else {
                        Self::stripped_path(p)
                    };
                    tree.file(&at, 0o755, std::fs::read(p)?);
                }
                Item::Bytes(p, mode, data) => tree.file(p, *mode, data.clone()),
                Item::Userland(u, p) => {
                    for file in u.closure(p)? {
                        initramfs::add_rooted(&mut tree, &u.root, &file)?;
                    }
                }
            }
        }
        let foreign = self.kernel.busybox.is_some();
        if !foreign && std::path::Path::new("/etc/ld.so.cache").exists() {
            initramfs::add_host(&mut tree, "/etc/ld.so.cache".as_ref())?;
        }
        let wanted: Vec<&str> = self.modules.iter().map(String::as_str).collect();
        let mods = modules::resolve(&self.kernel.modules, &wanted)
            .with_context(|| format!("resolving modules {wanted:?}"))?;
        // A foreign guest has no dash: busybox's shell runs the command.
        let shell = if foreign {
            format!("{BUSYBOX} sh")
        } else {
            SHELL.to_string()
        };
        initramfs::add_init(&mut tree, &mods, command, &nonce, &shell);
        let initrd = scratch.join("initramfs.cpio");
        let mut w = BufWriter::new(File::create(&initrd)?);
        tree.write_newc(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;

        // panic=-1 with -no-reboot turns a guest panic into qemu's exit;
        // loglevel=4 keeps the console to warnings; edd=off skips a BIOS probe.
        let mut append = if foreign {
            "console=ttyAMA0 panic=-1 loglevel=4".to_owned()
        } else {
            "console=ttyS0 panic=-1 loglevel=4 edd=off".to_owned()
        };
        for a in &self.append {
            append += " ";
            append += a;
        }
        let mut cmd = if foreign {
            // arm64: qemu's generic board; a Cortex-A57 boots in seconds
            // under TCG (`-cpu max` emulates pointer authentication, 4x
            // slower).
            let mut c = Command::new(QEMU_ARM64);
            c.args(["-M", "virt", "-cpu", "cortex-a57"]);
            c
        } else {
            // `-cpu max`: every feature TCG emulates, closer to a real router
            // CPU than the default qemu64.
            let mut c = Command::new(QEMU);
            c.args(["-accel", "tcg", "-cpu", "max"]);
            c
        };
        // No NIC: tests build veths inside.
        cmd.args(["-m", "2G", "-smp", "2"])
            .args(["-nographic", "-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(&self.kernel.vmlinuz)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &append])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // One guest at a time on this machine, across test threads and
        // processes: TCG guests sharing few cores would each run slower and
        // blow their timeouts, and their timings would mean nothing.
        std::fs::create_dir_all(cache_root())?;
        let _one_at_a_time = Lock::new(&cache_root().join("qemu.lock"))?;
        let start = Instant::now();
        let mut qemu = Qemu(cmd.spawn().with_context(|| {
            "starting qemu (qemu-system-x86 / qemu-system-arm: cargo xtask setup)".to_string()
        })?);
        let console = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            pump(qemu.0.stdout.take().expect("piped"), console.clone()),
            pump(qemu.0.stderr.take().expect("piped"), console.clone()),
        ];
        let exit_marker = format!("IOTFENCE-VM-EXIT-{nonce}=");
        let mut seen_at = None;
        let exited = loop {
            if let Some(status) = qemu.0.try_wait()? {
                break Some(status);
            }
            let now = Instant::now();
            if seen_at.is_none() && text(&console).contains(&exit_marker) {
                seen_at = Some(now);
            }
            // After the marker, give `poweroff -f` a few seconds, then stop it.
            let late = seen_at.is_some_and(|t| now - t > Duration::from_secs(10));
            if late || now - start > timeout {
                break None;
            }
            thread::sleep(Duration::from_millis(50));
        };
        drop(qemu); // kills it if still running, closing the pipes
        for r in readers {
            let _ = r.join();
        }
        let elapsed = start.elapsed();
        let console = text(&console);
        parse(&console, &nonce, elapsed).with_context(|| match exited {
            Some(s) => format!("qemu exited ({s}) after {elapsed:.1?}"),
            None => format!("qemu killed after {elapsed:.1?} (timeout {timeout:?})"),
        })
    }
}

/// The exit status from the console, or an error with the console's tail.
fn parse(console: &str, nonce: &str, elapsed: Duration) -> anyhow::Result<Outcome> {
    let tail = || {
        let lines: Vec<&str> = console.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let failed = format!("IOTFENCE-VM-SETUP-FAILED-{nonce}: ");
    if let Some(i) = console.find(&failed) {
        let step = console[i + failed.len()..].lines().next().unwrap_or("");
        bail!("guest setup failed at `{step}`; console tail:\n{}", tail());
    }
    let exit = format!("IOTFENCE-VM-EXIT-{nonce}=");
    let Some(i) = console.rfind(&exit) else {
        bail!("no exit marker on the console; its last lines:\n{}", tail());
    };
    let digits: String = console[i + exit.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let status = digits
        .parse()
        .with_context(|| format!("bad exit marker; console tail:\n{}", tail()))?;
    let start = format!("IOTFENCE-VM-START-{nonce}");
    let output = match console[..i].rfind(&start) {
        Some(s) => console[s + start.len()..i].trim_start_matches(['\r', '\n']),
        None => "",
    };
    Ok(Outcome {
        status,
        output: output.replace('\r', ""),
        console: console.to_owned(),
        elapsed,
    })
}

fn pump(mut from: impl Read + Send + 'static, to: Arc<Mutex<Vec<u8>>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

fn text(buf: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

/// qemu, killed on drop so a failing or panicking test leaves nothing behind.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
