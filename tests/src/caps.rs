//! Which capabilities the daemon needs, measured on the running kernel: a
//! child process runs as `nobody` with only the unit's capabilities (as
//! systemd's `AmbientCapabilities=` grants them, with `LimitMEMLOCK=
//! infinity`, after `iotfence prepare` handed it the pin and state
//! directories) and does what `iotfence run` does with the kernel: load
//! the datapath, apply a policy, attach on both modes, open the packet
//! socket that releases held DNS answers. Each capability of the set is
//! then taken away in turn: the set is minimal when each removal makes a
//! step fail. The kernel matrix runs this in Debian's kernels; verifier
//! rules (`CAP_PERFMON`) and program-type checks differ between kernels.

use std::{
    fs::File,
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    process::Command,
};

use anyhow::{bail, ensure, Context};
use iotfence::{
    caps::NEEDED,
    config::{self, AttachMode},
    dns::inject::Injector,
    kernel::{load::Datapath, probe::Kernel},
    policy::compile,
};

use crate::{netns::Netns, privileged::PinDir};

/// The argument that makes the suite binary the child (`child_main`).
pub const CHILD_ARG: &str = "--caps-child";

const POLICY: &str = "profiles:\n  p:\n    egress:\n      - to: 198.51.100.7\n        proto: tcp\n        ports: 443\ndevices:\n  - name: d\n    mac: 02:00:5e:10:00:01\n    profile: p\n";

fn config_text(pin_dir: &Path, state: &Path) -> String {
    format!(
        "interfaces: [iot0]\npolicy: policy.yaml\nresolvers: [192.0.2.1]\npin_dir: {}\nstate_dir: {}\n",
        pin_dir.display(),
        state.display()
    )
}

/// One capability set's outcome: `Ok` when every step worked, else the
/// step that failed and why.
pub fn try_with(exe: &Path, caps: &[u32]) -> anyhow::Result<Result<(), String>> {
    let ns = Netns::new("caps")?;
    ns.ip(&[
        "link", "add", "iot0", "type", "veth", "peer", "name", "dev0",
    ])?;
    ns.ip(&["link", "set", "iot0", "up"])?;
    ns.ip(&["link", "set", "dev0", "up"])?;
    let pins = PinDir::new();
    let dir = crate::privileged::TempDir::new("caps")?;
    let state = dir.join("state");
    std::fs::write(dir.join("policy.yaml"), POLICY)?;
    let cfg_path = dir.join("iotfence.yaml");
    std::fs::write(&cfg_path, config_text(&pins.path, &state))?;
    let cfg = config::load(&cfg_path).map_err(|d| anyhow::anyhow!("config: {d:?}"))?;
    // What `ExecStartPre=+iotfence prepare --owner` does for the unit. It
    // also hands the host's shared lock directory to the user: given back
    // on return, whatever happens.
    let _lock_dir = Restore::of(iotfence::lock::path_for(&pins.path).parent().unwrap())?;
    iotfence::prepare::prepare(&cfg, Some("nobody")).context("iotfence prepare")?;
    chown(&dir, 65534)?;
    let ns_file = File::open(ns.path())?;
    let caps = caps.to_vec();
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD_ARG).arg(&cfg_path);
    unsafe {
        cmd.pre_exec(move || become_nobody(&ns_file, &caps));
    }
    cmd.stderr(std::process::Stdio::inherit());
    let out = cmd.output().context("running the capability probe")?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        ensure!(text == "ok", "the probe said {text:?}");
        Ok(Ok(()))
    } else if text.is_empty() {
        bail!("the probe failed without a word ({})", out.status)
    } else {
        Ok(Err(text))
    }
}

/// A directory's owner and mode, put back on drop.
struct Restore {
    path: std::path::PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Restore {
    fn of(path: &Path) -> anyhow::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir_all(path)?;
        let m = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        })
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::os::unix::fs::chown(&self.path, Some(self.uid), Some(self.gid));
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
    }
}

fn chown(path: &Path, uid: u32) -> anyhow::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .with_context(|| format!("chown {}", path.display()))
}

/// In the forked child, before exec: into the test's network namespace,
/// memlock unlimited, then uid/gid 65534 keeping exactly `caps`, raised as
/// ambient capabilities so they survive the exec.
fn become_nobody(ns: &File, caps: &[u32]) -> std::io::Result<()> {
    let mut at = 0;
    let mut check = |rc: libc::c_long| {
        at += 1;
        if rc < 0 {
            // The errno is all that reaches the parent; which step it was
            // goes to stderr (the test's own).
            let e = std::io::Error::last_os_error();
            let msg = format!("capability probe, step {at}: {e}\n");
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            Err(e)
        } else {
            Ok(())
        }
    };
    unsafe {
        check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) as libc::c_long)?;
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // A container may cap the hard limit: then as high as it goes.
        if libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) != 0 {
            let mut r = unlimited;
            check(libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) as libc::c_long)?;
            r.rlim_cur = r.rlim_max;
            check(libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) as libc::c_long)?;
        }
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) as libc::c_long)?;
        check(libc::setgroups(0, std::ptr::null()) as libc::c_long)?;
        check(libc::setresgid(65534, 65534, 65534) as libc::c_long)?;
        check(libc::setresuid(65534, 65534, 65534) as libc::c_long)?;
        let mask = caps.iter().fold(0u64, |m, c| m | 1 << c);
        let header = CapHeader {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let half = |shift: u32| CapData {
            effective: (mask >> shift) as u32,
            permitted: (mask >> shift) as u32,
            inheritable: (mask >> shift) as u32,
        };
        let data = [half(0), half(32)];
        check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()))?;
        for c in caps {
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                *c as libc::c_ulong,
                0,
                0,
            ) as libc::c_long)?;
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The child: every step `iotfence run` takes with the kernel, as the
/// capabilities it was given allow. `Err`: the step that failed, and the
/// first line of why.
pub fn child_main(config_path: &Path) -> Result<(), String> {
    let failed = |step: &str, e: anyhow::Error| {
        let why = format!("{e:#}");
        let lines: Vec<&str> = why.lines().map(str::trim).collect();
        // A verifier log's verdict is the line before its statistics.
        let verdict = lines
            .iter()
            .position(|l| l.starts_with("verification time"))
            .and_then(|i| i.checked_sub(1))
            .map(|i| format!(" ({})", lines[i]))
            .unwrap_or_default();
        format!("{step}: {}{verdict}", lines.first().unwrap_or(&""))
    };
    let cfg = config::load(config_path).map_err(|d| format!("config: {d:?}"))?;
    let text = std::fs::read_to_string(config_path.with_file_name("policy.yaml"))
        .map_err(|e| format!("policy: {e}"))?;
    let policy = compile::compile(Path::new("policy.yaml"), &text, &cfg)
        .map_err(|d| format!("policy: {d:?}"))?;
    let mut dp = Datapath::load_for(&cfg.pin_dir, &cfg.dns, cfg.max_devices, Kernel::probe())
        .map_err(|e| failed("load", e))?;
    dp.apply(&cfg, &policy).map_err(|e| failed("apply", e))?;
    for mode in [AttachMode::XdpGeneric, AttachMode::Tc] {
        // With `dns.redirect`'s TC program beside XDP: every hook there is.
        dp.attach("iot0", mode, true)
            .map_err(|e| failed(&format!("attach {}", mode.name()), e))?;
    }
    Injector::new(cfg.dns.reinject_mark).map_err(|e| failed("packet socket", e.into()))?;
    // A restart adopts the programs just verified (BPF_OBJ_GET of their
    // pins, the maps they use read through those descriptors) and swaps
    // them into the links: with this set too, not only as root.
    let mut again = Datapath::load_for(&cfg.pin_dir, &cfg.dns, cfg.max_devices, Kernel::probe())
        .map_err(|e| failed("restart: load", e))?;
    if let Some(why) = &again.not_adopted {
        return Err(format!("restart: programs not adopted ({why:?})"));
    }
    again
        .attach("iot0", AttachMode::Tc, true)
        .map_err(|e| failed("restart: attach tc", e))?;
    Ok(())
}

/// The unit's set works, and is minimal: without each capability, a step
/// fails. Returns one line per capability: what fails without it.
pub fn measure(exe: &Path) -> anyhow::Result<Vec<String>> {
    let all: Vec<u32> = NEEDED.iter().map(|(c, _, _)| *c).collect();
    if let Err(e) = try_with(exe, &all)? {
        bail!("with {}: {e}", names(&all));
    }
    let mut lines = Vec::new();
    for (cap, name, _) in NEEDED {
        let without: Vec<u32> = all.iter().copied().filter(|c| *c != cap).collect();
        match try_with(exe, &without)? {
            Ok(()) => bail!("{name} is not needed on this kernel: everything works without it"),
            Err(step) => lines.push(format!("without {name}: {step}")),
        }
    }
    Ok(lines)
}

fn names(caps: &[u32]) -> String {
    NEEDED
        .iter()
        .filter(|(c, _, _)| caps.contains(c))
        .map(|(_, n, _)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}
