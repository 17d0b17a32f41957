//! Programs this kernel has verified already. A restarted daemon adopts the
//! pinned programs instead of loading them again when they came from the
//! same build with the same load-time settings and use exactly the maps now
//! pinned. The verifier is most of a start's time (hundreds of ms per
//! program, more on a router's CPU), and a daemon restarted after a crash
//! must be back before the answers the kernel holds for it time out.
//!
//! What the pins hold is recorded by an empty bpffs directory beside them,
//! `progs/build_<fingerprint>`. It lives and dies with the pins (a reboot,
//! `iotfence detach`); a start that loads anew removes it before anything
//! else and makes it only once all new programs are pinned, so a crash in
//! between leaves none, and the next start verifies again.

use std::{
    collections::HashSet,
    io,
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use anyhow::Context;
use aya::{
    programs::{ProgramError, ProgramFd, SchedClassifier, Xdp},
    Ebpf,
};
use aya_obj::programs::XdpAttachType;
use iotfence_common::consts::prog_names;

use super::{maps::Shape, sys};

/// The object's unpinned maps that hold nothing from one packet to the
/// next. Any other unpinned map would be state the pinned programs keep
/// in a copy nobody else sees, so it forbids adopting them.
pub const STATELESS: &[&str] = &["iotf1_scratch"];

/// Name prefix of the record under `progs/`.
pub const RECORD_PREFIX: &str = "build_";

/// What decides whether pinned programs are what a load would make: the
/// embedded object, the executable that relocates it (another build of the
/// loader may relocate the same object differently), and the load-time
/// globals. FNV-1a: no adversary here (the pins are root's), only change.
pub fn fingerprint(object: &[u8], globals: &[u64]) -> u64 {
    let mut h = Fnv::default();
    h.write(object);
    // The running executable as a file: a rebuilt or upgraded daemon is
    // another file (inode, size, mtime), so it verifies once.
    if let Ok(m) = std::fs::metadata("/proc/self/exe") {
        for v in [
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
        ] {
            h.write(&v.to_le_bytes());
        }
    }
    for g in globals {
        h.write(&g.to_le_bytes());
    }
    h.0
}

#[derive(Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The record's path for `fingerprint`.
fn record(progs: &Path, fingerprint: u64) -> PathBuf {
    progs.join(format!("{RECORD_PREFIX}{fingerprint:016x}"))
}

/// Whether `path` (an entry of `progs/`) is such a record.
pub fn is_record(path: &Path) -> bool {
    path.file_name()
        .and_then(|f| f.to_str())
        .is_some_and(|f| f.starts_with(RECORD_PREFIX))
}

/// Whether `path` is the record of `fingerprint`.
pub fn is_record_of(path: &Path, fingerprint: u64) -> bool {
    path.file_name() == record(Path::new(""), fingerprint).file_name()
}

/// Removes every record under `progs` (before new programs are pinned).
pub fn forget(progs: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(progs) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", progs.display())),
    };
    for e in entries {
        let path = e?.path();
        if is_record(&path) {
            std::fs::remove_dir(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Records that the programs pinned under `progs` are those of
/// `fingerprint` (after they are all pinned).
pub fn remember(progs: &Path, fingerprint: u64) -> anyhow::Result<()> {
    let path = record(progs, fingerprint);
    match std::fs::create_dir(&path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(e).with_context(|| format!("creating {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The pinned programs, verified by this kernel for this build.
pub struct Adopted {
    pub xdp: Xdp,
    pub tc: Vec<(&'static str, SchedClassifier)>,
}

impl Adopted {
    pub fn tc(&self, name: &str) -> Option<&SchedClassifier> {
        self.tc.iter().find(|(n, _)| *n == name).map(|(_, p)| p)
    }

    pub fn tc_mut(&mut self, name: &str) -> Option<&mut SchedClassifier> {
        self.tc.iter_mut().find(|(n, _)| *n == name).map(|(_, p)| p)
    }
}

/// Why pinned programs were not adopted (logged; the start then verifies).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No record of `fingerprint`: none pinned, or another build's or
    /// settings'.
    NoRecord,
    /// A map the programs would use was created at this load, not adopted.
    MapCreated(String),
    /// A pinned program uses a map that is no longer pinned.
    StaleMap(&'static str),
    /// The object has a map with state that is not pinned (see
    /// `STATELESS`).
    Unpinned(String),
    /// A pin is missing or unreadable.
    Unreadable(&'static str, String),
}

/// The first map the object pins that has no pin under `map_dir` yet,
/// asked before the load: the loader creates it, and pinned programs
/// cannot know the new map.
pub fn missing_map(map_dir: &Path, defined: &[(String, Shape)]) -> Option<String> {
    defined
        .iter()
        .map(|(name, _)| name)
        .find(|name| !map_dir.join(name).exists())
        .cloned()
}

/// The pinned programs of `fingerprint` under `progs`, if they can stand in
/// for a new load: recorded for this fingerprint, and every map they use is
/// one `ebpf` adopted from its pin, or one of its unpinned maps without
/// state (`.rodata`, whose content the fingerprint covers, and scratch).
pub fn adopt(
    progs: &Path,
    fingerprint: u64,
    ebpf: &Ebpf,
    defined: &[(String, Shape)],
) -> Result<Adopted, Refused> {
    if !record(progs, fingerprint).is_dir() {
        return Err(Refused::NoRecord);
    }
    let pinned: HashSet<&str> = defined.iter().map(|(name, _)| name.as_str()).collect();
    let mut ours = HashSet::new();
    let mut data_maps = 0usize;
    for (name, map) in ebpf.maps() {
        if pinned.contains(name) {
            let id = super::maps::data_of(map)
                .and_then(|d| d.info().ok())
                .map(|i| i.id())
                .ok_or_else(|| Refused::Unreadable("maps", name.to_owned()))?;
            ours.insert(id);
        } else if name.starts_with('.') || STATELESS.contains(&name) {
            // Made anew at every load, so pinned programs use an earlier
            // copy, which is as good: load-time data (`.rodata`, which the
            // fingerprint covers) and per-packet scratch memory.
            data_maps += 1;
        } else {
            return Err(Refused::Unpinned(name.to_owned()));
        }
    }
    // Any other map a pinned program uses that is not among the adopted
    // pins (a map created anew since it was loaded, say) refuses it.
    let check = |name: &'static str, fd: Result<&ProgramFd, ProgramError>| {
        let ids = fd
            .map_err(|e| e.to_string())
            .and_then(|fd| sys::prog_map_ids(fd.as_fd()).map_err(|e| e.to_string()))
            .map_err(|e| Refused::Unreadable(name, e))?;
        if ids.iter().filter(|id| !ours.contains(id)).count() > data_maps {
            return Err(Refused::StaleMap(name));
        }
        Ok(())
    };
    let xdp = Xdp::from_pin(progs.join(prog_names::XDP), XdpAttachType::Interface)
        .map_err(|e| Refused::Unreadable(prog_names::XDP, e.to_string()))?;
    check(prog_names::XDP, xdp.fd())?;
    let mut tc = Vec::new();
    for name in [
        prog_names::TC_INGRESS,
        prog_names::TC_EGRESS,
        prog_names::TC_QUERIES,
    ] {
        let p = SchedClassifier::from_pin(progs.join(name))
            .map_err(|e| Refused::Unreadable(name, e.to_string()))?;
        check(name, p.fd())?;
        tc.push((name, p));
    }
    Ok(Adopted { xdp, tc })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::maps::pinned_definitions;

    #[test]
    fn fingerprint_follows_object_and_globals() {
        let a = fingerprint(b"object", &[1, 2]);
        assert_eq!(a, fingerprint(b"object", &[1, 2]));
        assert_ne!(a, fingerprint(b"objecT", &[1, 2]));
        assert_ne!(a, fingerprint(b"object", &[1, 3]));
        assert_ne!(a, fingerprint(b"object", &[2, 1]));
    }

    /// A new unpinned map must be thought about: state in it would live
    /// on in adopted programs' copy (then list it pinned), or it is scratch
    /// (then in `STATELESS`).
    #[test]
    fn the_objects_unpinned_maps_hold_no_state() {
        let obj = aya_obj::Object::parse(crate::kernel::object::BPF_OBJECT).unwrap();
        let pinned: Vec<String> = pinned_definitions()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let mut unpinned: Vec<&str> = obj
            .maps
            .keys()
            .map(String::as_str)
            .filter(|n| !pinned.iter().any(|p| p == n) && !n.starts_with('.'))
            .collect();
        unpinned.sort_unstable();
        assert_eq!(unpinned, STATELESS);
    }

    #[test]
    fn records_are_recognised_by_name() {
        let p = record(Path::new("/sys/fs/bpf/x/progs"), 0xab);
        assert!(is_record(&p));
        assert_eq!(p.file_name().unwrap(), "build_00000000000000ab");
        assert!(!is_record(Path::new("/sys/fs/bpf/x/progs/iotfence_xdp")));
    }
}
