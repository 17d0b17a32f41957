//! Attaching the loaded programs to an interface (swapping them into an
//! earlier daemon's pinned links, so enforcement never lapses), pinning
//! links and programs, and detaching.

use std::{
    io,
    path::{Path, PathBuf},
};

use anyhow::Context;
use aya::programs::{
    links::{FdLink, PinnedLink},
    tc::{SchedClassifierLink, TcAttachType},
    xdp::XdpLink,
    SchedClassifier, Xdp, XdpMode,
};
use iotfence_common::consts::prog_names;

use super::{load::Datapath, tc_legacy, verified};
use crate::config::AttachMode;

impl Datapath {
    /// Attaches (or swaps into existing pinned links) the egress judge in
    /// `mode` and the TC egress observer on `iface`, and pins links and
    /// programs; `redirect`: `dns.redirect` is on. Returns the XDP mode
    /// used, if XDP.
    pub fn attach(
        &mut self,
        iface: &str,
        mode: AttachMode,
        redirect: bool,
    ) -> anyhow::Result<&'static str> {
        let links = self.pin_dir.join("links");
        let progs = super::pins::prog_dir(&self.pin_dir);
        std::fs::create_dir_all(&links)?;
        std::fs::create_dir_all(&progs)?;
        let xdp_pin = links.join(link_pin_name(iface, "xdp"));
        let tc_in_pin = links.join(link_pin_name(iface, "tc_ingress"));
        let tc_eg_pin = links.join(link_pin_name(iface, "tc_egress"));
        let tc_q_pin = links.join(link_pin_name(iface, "tc_queries"));

        // Observer first: inbound flows must be recorded before the judge
        // sees the device's replies.
        self.attach_tc(
            prog_names::TC_EGRESS,
            iface,
            TcAttachType::Egress,
            &tc_eg_pin,
        )?;
        let how = if mode == AttachMode::Tc {
            self.attach_tc(
                prog_names::TC_INGRESS,
                iface,
                TcAttachType::Ingress,
                &tc_in_pin,
            )?;
            // Switching from XDP: the TC judge is in place, drop the old one
            // (and the query copier beside it; the TC judge copies itself).
            remove_pin(&xdp_pin)?;
            remove_link(&tc_q_pin)?;
            "tc"
        } else {
            // Where XDP cannot copy DNS queries, or rewrite redirected ones,
            // a TC program beside it does; it goes in first, so no query
            // slips past uncopied or unrewritten.
            if self.kernel.xdp_load_bytes && !redirect {
                remove_link(&tc_q_pin)?;
            } else {
                self.attach_tc(
                    prog_names::TC_QUERIES,
                    iface,
                    TcAttachType::Ingress,
                    &tc_q_pin,
                )?;
            }
            let how = self.attach_xdp(iface, mode, &xdp_pin)?;
            remove_link(&tc_in_pin)?;
            how
        };
        // Pins of programs this build does not have (an earlier build's
        // names) go: the links above already run this build's programs.
        prune_programs(&progs, self.fingerprint)?;
        if self.adopted.is_none() {
            for name in prog_names::ALL {
                let path = progs.join(name);
                remove_pin(&path)?;
                self.ebpf
                    .program_mut(name)
                    .context("program missing")?
                    .pin(&path)
                    .with_context(|| format!("pinning {name}"))?;
            }
            // Only now: a start that finds the record adopts these pins.
            verified::remember(&progs, self.fingerprint)?;
        }
        Ok(how)
    }

    fn attach_xdp(
        &mut self,
        iface: &str,
        mode: AttachMode,
        pin: &Path,
    ) -> anyhow::Result<&'static str> {
        let p: &mut Xdp = self.xdp_mut()?;
        if let Some(old) = open_pinned_link(pin)? {
            let link = XdpLink::try_from(FdLink::from(old)).context("pinned XDP link")?;
            match p.attach_to_link(link) {
                Ok(id) => {
                    drop(p.take_link(id)?);
                    return Ok("xdp (adopted)");
                }
                // The interface it was attached to is gone (deleted, maybe
                // re-created): the link is severed, enforcing nothing.
                Err(e) if severed(&e) => {
                    tracing::warn!(interface = iface, pin = %pin.display(), "pinned XDP link severed (interface re-created?); attaching anew");
                    remove_pin(pin)?;
                }
                Err(e) => return Err(e).context("swapping the XDP program in its pinned link"),
            }
        }
        let (id, how) = match mode {
            AttachMode::XdpNative => (
                p.attach(iface, XdpMode::Driver)
                    .with_context(|| format!("native XDP on {iface}"))?,
                "xdp-native",
            ),
            AttachMode::XdpGeneric => (
                p.attach(iface, XdpMode::Skb)
                    .with_context(|| format!("generic XDP on {iface}"))?,
                "xdp-generic",
            ),
            _ => match p.attach(iface, XdpMode::Driver) {
                Ok(id) => (id, "xdp-native"),
                Err(e) => {
                    tracing::warn!(interface = iface, error = %e, "native XDP unavailable, using generic XDP");
                    (
                        p.attach(iface, XdpMode::Skb)
                            .with_context(|| format!("XDP on {iface}"))?,
                        "xdp-generic",
                    )
                }
            },
        };
        let link: FdLink = p
            .take_link(id)?
            .try_into()
            .context("XDP attached without a bpf_link (kernel < 5.9?)")?;
        link.pin(pin)
            .with_context(|| format!("pinning {}", pin.display()))?;
        Ok(how)
    }

    fn attach_tc(
        &mut self,
        name: &str,
        iface: &str,
        hook: TcAttachType,
        pin: &Path,
    ) -> anyhow::Result<()> {
        let tcx = self.kernel.tcx;
        let p: &mut SchedClassifier = self.tc_mut(name)?;
        if !tcx {
            // No TCX (before 6.6): a cls_bpf filter, recorded by a marker.
            let marker = marker_path(pin);
            tc_legacy::attach(p, name, iface, hook)?;
            remove_pin(&marker)?;
            p.pin(&marker)
                .with_context(|| format!("pinning {}", marker.display()))?;
            return Ok(());
        }
        if let Some(old) = open_pinned_link(pin)? {
            let link =
                SchedClassifierLink::try_from(FdLink::from(old)).context("pinned TC link")?;
            match p.attach_to_link(link) {
                Ok(id) => {
                    drop(p.take_link(id)?);
                    return Ok(());
                }
                Err(e) if severed(&e) => {
                    tracing::warn!(interface = iface, pin = %pin.display(), "pinned TC link severed (interface re-created?); attaching anew");
                    remove_pin(pin)?;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("swapping {name} in its pinned link"))
                }
            }
        }
        let id = p
            .attach(iface, hook)
            .with_context(|| format!("attaching {name} to {iface}"))?;
        let link: FdLink = p
            .take_link(id)?
            .try_into()
            .context("TC attached without a TCX link (kernel < 6.6?)")?;
        link.pin(pin)
            .with_context(|| format!("pinning {}", pin.display()))?;
        Ok(())
    }
}

/// bpffs refuses names with dots (reserved for its own files) and interface
/// names never contain ':', so VLAN interfaces like `eth0.20` map to
/// `eth0:20_xdp` without collisions.
pub fn link_pin_name(iface: &str, hook: &str) -> String {
    format!("{}_{hook}", iface.replace('.', ":"))
}

/// A link update refused because the link's interface is gone (ENOLINK).
fn severed(e: &aya::programs::ProgramError) -> bool {
    matches!(
        e,
        aya::programs::ProgramError::SyscallError(aya::sys::SyscallError { io_error, .. })
            if io_error.raw_os_error() == Some(libc::ENOLINK)
    )
}

/// The marker pin of a cls_bpf filter that stands for the link `pin`.
fn marker_path(pin: &Path) -> PathBuf {
    let mut name = pin.file_name().unwrap_or_default().to_os_string();
    name.push(tc_legacy::MARKER_SUFFIX);
    pin.with_file_name(name)
}

fn open_pinned_link(path: &Path) -> anyhow::Result<Option<PinnedLink>> {
    if !path.exists() {
        return Ok(None);
    }
    let link = PinnedLink::from_pin(path)
        .with_context(|| format!("opening pinned link {}", path.display()))?;
    Ok(Some(link))
}

/// Removes a pin; for a TC link pin, also the cls_bpf filter its marker
/// records, if any (a mode switch on a kernel without TCX).
fn remove_link(path: &Path) -> anyhow::Result<()> {
    let marker = marker_path(path);
    if marker.exists() {
        tc_legacy::remove_marked(&marker)?;
    }
    Ok(remove_pin(path)?)
}

fn remove_pin(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the pins under `progs` that name no program of this build, and
/// records of other builds' programs (`verified`) but `fingerprint`'s.
fn prune_programs(progs: &Path, fingerprint: u64) -> anyhow::Result<()> {
    for e in std::fs::read_dir(progs).with_context(|| format!("reading {}", progs.display()))? {
        let path = e?.path();
        if verified::is_record(&path) {
            if !verified::is_record_of(&path, fingerprint) {
                std::fs::remove_dir(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
            continue;
        }
        let ours = path
            .file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| prog_names::ALL.contains(&f));
        if !ours {
            tracing::info!(pin = %path.display(), "removing the pin of a program this build does not have");
            remove_pin(&path)?;
        }
    }
    Ok(())
}

/// Removes every pin (links first, so enforcement stops before the maps go).
pub fn detach(pin_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for sub in ["links", "progs", "maps"] {
        let dir = pin_dir.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for e in entries {
            let path = e?.path();
            let is_marker = sub == "links"
                && path
                    .to_str()
                    .is_some_and(|p| p.ends_with(tc_legacy::MARKER_SUFFIX));
            if is_marker {
                tc_legacy::remove_marked(&path)?;
            } else if sub == "progs" && verified::is_record(&path) {
                std::fs::remove_dir(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            } else {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
            removed.push(path);
        }
        std::fs::remove_dir(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    match std::fs::remove_dir(pin_dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", pin_dir.display()))
        }
        _ => {}
    }
    Ok(removed)
}
