//! What the running kernel supports, found before anything is changed: the
//! daemon refuses to start on a kernel that lacks a feature it needs (one
//! line naming it, exit 71), and picks the optional ones the eBPF object
//! uses where present (`consts::features`). `iotfence check --kernel`
//! prints the same findings.
//!
//! Helpers and map types are probed by asking the kernel (a two-instruction
//! program or a tiny map, loaded and closed at once: no side effect); hook
//! kinds whose only probe would attach something (TCX, XDP links) are read
//! from the release, as aya itself does for TCX.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

use iotfence_common::consts::features;

use super::sys;
use crate::config::AttachMode;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
const BPF_PROG_TYPE_XDP: u32 = 6;
const HELPER_KTIME_GET_COARSE_NS: i32 = 160;
const HELPER_XDP_LOAD_BYTES: i32 = 189;

/// Tests set this to a comma-separated list of feature keys (`ringbuf`,
/// `xdp_link`, `tcx`, `coarse_clock`, `xdp_load_bytes`) to make the probe
/// report them missing, as on an older kernel.
pub const PRETEND_MISSING_ENV: &str = "IOTFENCE_PRETEND_MISSING";

#[derive(Clone, Debug, serde::Serialize)]
pub struct Kernel {
    pub release: String,
    /// BPF ring buffer maps (5.8): events and DNS frames. Required.
    pub ringbuf: bool,
    /// XDP attached through a bpf_link (5.9), which pins and survives the
    /// daemon. Required for the XDP modes.
    pub xdp_link: bool,
    /// TCX links (6.6); without them TC programs go through a clsact qdisc.
    pub tcx: bool,
    /// `bpf_ktime_get_coarse_ns` (5.11).
    pub coarse_clock: bool,
    /// `bpf_xdp_load_bytes` (5.18).
    pub xdp_load_bytes: bool,
}

/// A required feature the kernel lacks.
#[derive(Debug, thiserror::Error)]
#[error("kernel {release}: {what} need Linux {since} or newer")]
pub struct Missing {
    pub release: String,
    pub what: &'static str,
    pub since: &'static str,
}

impl Kernel {
    pub fn probe() -> Self {
        raise_memlock();
        let release = release();
        let at_least = |v| version_at_least(&release, v);
        let pretend = std::env::var(PRETEND_MISSING_ENV).unwrap_or_default();
        let off = |key: &str| pretend.split(',').any(|k| k.trim() == key);
        let k = Kernel {
            ringbuf: !off("ringbuf") && ringbuf_map(),
            xdp_link: !off("xdp_link") && at_least((5, 9)),
            tcx: !off("tcx") && at_least((6, 6)),
            coarse_clock: !off("coarse_clock") && helper(HELPER_KTIME_GET_COARSE_NS),
            xdp_load_bytes: !off("xdp_load_bytes") && helper(HELPER_XDP_LOAD_BYTES),
            release,
        };
        tracing::debug!(kernel = ?k, "kernel probed");
        k
    }

    /// The bits for the object's `IOTF_FEATURES` global.
    pub fn feature_bits(&self) -> u32 {
        let mut bits = 0;
        if self.coarse_clock {
            bits |= features::COARSE_CLOCK;
        }
        if self.xdp_load_bytes {
            bits |= features::XDP_LOAD_BYTES;
        }
        bits
    }

    /// The first required feature missing for `mode`, if any.
    pub fn require(&self, mode: AttachMode) -> Result<(), Missing> {
        let missing = |what, since| Missing {
            release: self.release.clone(),
            what,
            since,
        };
        if !self.ringbuf {
            return Err(missing(
                "BPF ring buffer maps (violation events, DNS learning)",
                "5.8",
            ));
        }
        if mode != AttachMode::Tc && !self.xdp_link {
            return Err(missing(
                "XDP bpf_links (enforcement that outlives the daemon)",
                "5.9",
            ));
        }
        Ok(())
    }

    /// What `iotfence check --kernel` prints.
    pub fn report(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mode = |m: AttachMode| match self.require(m) {
            Ok(()) => "works".to_string(),
            Err(e) => format!("refused: {e}"),
        };
        format!(
            "kernel {}\n\
             ring buffer maps (5.8, required):        {}\n\
             XDP bpf_links (5.9, required for xdp):    {}\n\
             TCX links (6.6):                          {} ({})\n\
             bpf_ktime_get_coarse_ns (5.11):           {} ({})\n\
             bpf_xdp_load_bytes (5.18):                {} ({})\n\
             attach: xdp (native, else generic):       {}\n\
             attach: tc:                               {}\n",
            self.release,
            yes(self.ringbuf),
            yes(self.xdp_link),
            yes(self.tcx),
            if self.tcx {
                "TC programs attach as TCX links"
            } else {
                "TC programs attach as clsact filters"
            },
            yes(self.coarse_clock),
            if self.coarse_clock {
                "deadlines read the coarse clock"
            } else {
                "deadlines read bpf_ktime_get_ns"
            },
            yes(self.xdp_load_bytes),
            if self.xdp_load_bytes {
                "XDP copies DNS queries with the helper"
            } else {
                "XDP copies DNS queries with direct reads"
            },
            mode(AttachMode::Xdp),
            mode(AttachMode::Tc),
        )
    }
}

fn release() -> String {
    // SAFETY: uname fills the zeroed struct; release is NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "unknown".into();
        }
        std::ffi::CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// `5.10.0-32-cloud-amd64` ≥ (5, 9)? An unparsable release counts as new.
fn version_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
        _ => true,
    }
}

fn bpf_fd(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<OwnedFd> {
    // SAFETY: `attr` points only at buffers that outlive the call.
    let fd = unsafe { sys::bpf(cmd, attr) }?;
    // SAFETY: both commands return a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK (64 KiB by
/// default, less than our pinned maps take), so every map creation fails
/// with EPERM once the datapath exists; later kernels charge the memory
/// cgroup and ignore the limit. Raised to unlimited, as aya does at load.
pub fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit by reference.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "raising RLIMIT_MEMLOCK");
    }
}

/// Only EINVAL (an unknown map type) means absent: EPERM (a memlock limit
/// that could not be raised, missing capabilities) says nothing about the
/// kernel, and loading will report it with its real cause.
fn ringbuf_map() -> bool {
    let mut attr = [0u8; 72];
    attr[0..4].copy_from_slice(&BPF_MAP_TYPE_RINGBUF.to_ne_bytes());
    attr[12..16].copy_from_slice(&4096u32.to_ne_bytes());
    match bpf_fd(BPF_MAP_CREATE, &mut attr) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EINVAL),
    }
}

/// Whether the kernel knows helper `id` for XDP programs: loads
/// `call id; r0 = XDP_PASS; exit`. A known helper may still be refused for
/// its (unset) arguments; only "unknown func" in the log means absent.
fn helper(id: i32) -> bool {
    let insn = |op: u8, imm: i32| u64::from(op) | (u64::from(imm as u32) << 32);
    let prog = [insn(0x85, id), insn(0xb7, 2), insn(0x95, 0)];
    let license = b"GPL\0";
    let mut log = vec![0u8; 4096];
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&BPF_PROG_TYPE_XDP.to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[24..28].copy_from_slice(&1u32.to_ne_bytes()); // log_level
    attr[28..32].copy_from_slice(&(log.len() as u32).to_ne_bytes());
    attr[32..40].copy_from_slice(&(log.as_mut_ptr() as u64).to_ne_bytes());
    match bpf_fd(BPF_PROG_LOAD, &mut attr) {
        Ok(_) => true,
        Err(_) => {
            let text = String::from_utf8_lossy(&log);
            !(text.contains("unknown func") || text.contains("invalid func"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_compare_by_major_and_minor() {
        assert!(version_at_least("5.10.0-32-cloud-amd64", (5, 9)));
        assert!(!version_at_least("5.10.0-32-cloud-amd64", (5, 11)));
        assert!(version_at_least("6.18.44-fc-v1045", (6, 6)));
        assert!(!version_at_least("6.1.0-40-cloud-amd64", (6, 6)));
        assert!(version_at_least("garbage", (9, 9)));
    }

    #[test]
    fn a_missing_feature_is_named_with_its_version() {
        let k = Kernel {
            release: "5.4.0".into(),
            ringbuf: false,
            xdp_link: false,
            tcx: false,
            coarse_clock: false,
            xdp_load_bytes: false,
        };
        let e = k.require(AttachMode::Tc).unwrap_err().to_string();
        assert_eq!(
            e,
            "kernel 5.4.0: BPF ring buffer maps (violation events, DNS learning) need Linux 5.8 or newer"
        );
        let k = Kernel { ringbuf: true, ..k };
        assert!(k.require(AttachMode::Tc).is_ok());
        assert!(k
            .require(AttachMode::Xdp)
            .unwrap_err()
            .to_string()
            .contains("XDP bpf_links"));
        assert_eq!(k.feature_bits(), 0);
    }
}
