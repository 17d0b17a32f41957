//! TC programs on kernels without TCX links (before 6.6: Debian 11 and 12):
//! a `clsact` qdisc with `cls_bpf` direct-action filters, over netlink.
//!
//! Such a filter is no bpf_link, so it cannot be pinned; it stays in the
//! qdisc when the daemon exits, which gives the same guarantee. Each of our
//! programs has its own fixed (priority, handle), so a restarted daemon
//! finds its filter without scanning and swaps the program in place (a
//! netlink change of an existing filter: the kernel replaces the program
//! under RCU, no packet sees no filter), and `detach` removes exactly those
//! filters, never another user's. A marker pin
//! (`links/<iface>_<hook>_nl`, the program itself) records which interfaces
//! carry our filters, for `detach` and for adoption.

use std::path::Path;

use anyhow::Context;
use aya::programs::{
    links::Link,
    tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcAttachType, TcHandle},
    SchedClassifier,
};
use iotfence_common::consts::prog_names;

/// Our filters' priority: 1 runs before every other filter on the hook,
/// so no other classifier can accept a packet before the judge sees it.
pub const PRIORITY: u16 = 1;
/// Major part of our handles ("iotf"-ish, unlikely to be chosen by hand).
const HANDLE_MAJOR: u16 = 0x10f7;

/// Suffix of marker pins.
pub const MARKER_SUFFIX: &str = "_nl";

/// The fixed handle of program `name`.
pub fn handle(name: &str) -> TcHandle {
    let minor = match name {
        prog_names::TC_INGRESS => 1,
        prog_names::TC_QUERIES => 2,
        _ => 3, // TC_EGRESS
    };
    TcHandle::new(HANDLE_MAJOR, minor)
}

/// Attaches (or, when `adopt` is set and our filter is there, swaps) `p`
/// as the filter of its fixed handle on `iface`'s `hook`.
pub fn attach(
    p: &mut SchedClassifier,
    name: &str,
    iface: &str,
    hook: TcAttachType,
) -> anyhow::Result<&'static str> {
    // Another user's clsact is shared, never replaced.
    if let Err(e) = tc::qdisc_add_clsact(iface) {
        if !already_exists(&e) {
            return Err(e).with_context(|| format!("adding a clsact qdisc to {iface}"));
        }
    }
    let ours = SchedClassifierLink::attached(iface, hook, PRIORITY, handle(name), None)
        .with_context(|| format!("interface {iface}"))?;
    let (id, how) = match p.attach_to_link(ours) {
        Ok(id) => (id, "adopted"),
        // Not there (first start, reboot, re-created interface): create it.
        Err(_) => (
            p.attach_with_options(
                iface,
                hook,
                TcAttachOptions::Netlink(NlOptions {
                    priority: PRIORITY,
                    handle: handle(name),
                    classid: None,
                }),
            )
            .with_context(|| format!("attaching {name} to {iface} as a cls_bpf filter"))?,
            "attached",
        ),
    };
    // The filter must outlive this process: a dropped link would detach it.
    std::mem::forget(p.take_link(id)?);
    Ok(how)
}

/// Removes our filter of program `name` from `iface`'s `hook`; a filter or
/// interface already gone is not an error.
pub fn detach(name: &str, iface: &str, hook: TcAttachType) -> anyhow::Result<()> {
    let link = match SchedClassifierLink::attached(iface, hook, PRIORITY, handle(name), None) {
        Ok(l) => l,
        Err(e) => {
            // Gone with its filters (deleted), or in another network
            // namespace than this process: say so, the filter may remain.
            tracing::warn!(interface = iface, error = %e, "interface not found in this network namespace; its {name} filter, if any, is left");
            return Ok(());
        }
    };
    match link.detach() {
        Ok(()) => Ok(()),
        Err(e) if format!("{e:?}").contains("No such file") => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {name}'s filter from {iface}")),
    }
}

/// (interface, hook, program) of a marker pin's file name, e.g.
/// `eth0:20_tc_egress_nl` → (`eth0.20`, Egress, `to_device_tc`).
pub fn parse_marker(file: &str) -> Option<(String, TcAttachType, &'static str)> {
    let stem = file.strip_suffix(MARKER_SUFFIX)?;
    let (iface, hook, name) = if let Some(i) = stem.strip_suffix("_tc_egress") {
        (i, TcAttachType::Egress, prog_names::TC_EGRESS)
    } else if let Some(i) = stem.strip_suffix("_tc_ingress") {
        (i, TcAttachType::Ingress, prog_names::TC_INGRESS)
    } else if let Some(i) = stem.strip_suffix("_tc_queries") {
        (i, TcAttachType::Ingress, prog_names::TC_QUERIES)
    } else {
        return None;
    };
    Some((iface.replace(':', "."), hook, name))
}

/// Removes the filter a marker pin records, then the pin.
pub fn remove_marked(pin: &Path) -> anyhow::Result<()> {
    let file = pin.file_name().and_then(|f| f.to_str()).unwrap_or("");
    if let Some((iface, hook, name)) = parse_marker(file) {
        detach(name, &iface, hook)?;
    }
    std::fs::remove_file(pin).with_context(|| format!("removing {}", pin.display()))
}

fn already_exists(e: &tc::TcError) -> bool {
    let text = format!("{e:?}");
    text.contains("File exists") || text.contains("EEXIST") || text.contains("os error 17")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_interface_hook_and_program() {
        let (i, h, n) = parse_marker("eth0:20_tc_egress_nl").unwrap();
        assert_eq!((i.as_str(), n), ("eth0.20", prog_names::TC_EGRESS));
        assert!(matches!(h, TcAttachType::Egress));
        let (i, h, n) = parse_marker("iot0_tc_queries_nl").unwrap();
        assert_eq!((i.as_str(), n), ("iot0", prog_names::TC_QUERIES));
        assert!(matches!(h, TcAttachType::Ingress));
        assert!(parse_marker("iot0_tc_egress").is_none());
        assert!(parse_marker("iot0_xdp_nl").is_none());
    }

    #[test]
    fn every_program_has_its_own_handle() {
        let hs: Vec<u32> = [
            prog_names::TC_INGRESS,
            prog_names::TC_QUERIES,
            prog_names::TC_EGRESS,
        ]
        .iter()
        .map(|n| handle(n).into())
        .collect();
        assert_eq!(hs, vec![0x10f7_0001, 0x10f7_0002, 0x10f7_0003]);
    }
}
