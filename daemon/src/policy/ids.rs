//! Stable device ids. Counters, rate limits and learned addresses are keyed
//! by device id in the kernel, so a device must keep its id when the policy
//! is edited (devices inserted, reordered or removed) and across restarts.
//! Ids are kept by device name in `state_dir/device-ids.json`; a new device
//! gets an id no device held recently (a cursor that only moves forward and
//! wraps to the lowest free id), so it never inherits another's state.

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::policy::compile::Compiled;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Saved {
    by_name: BTreeMap<String, u32>,
    /// The next id to hand out when it is free.
    next: u32,
}

pub struct DeviceIds {
    path: PathBuf,
    saved: Saved,
    trusted: bool,
    /// `max_devices`: ids are 1 to `capacity - 1`.
    capacity: u32,
}

impl DeviceIds {
    /// Reads the table. An unreadable or inconsistent one (bad JSON, an id
    /// twice, an id out of range) is moved aside to `device-ids.json.bad`
    /// with an error naming what is wrong, and ids start afresh: the daemon
    /// still starts (enforcement must come up at boot), but nothing keyed
    /// by the old ids is trusted (`trusted`). Ids are kept below
    /// `capacity` (`max_devices`): lowering it below an id in use makes the
    /// table unusable too.
    pub fn load(state_dir: &Path, capacity: u32) -> Self {
        let path = state_dir.join("device-ids.json");
        let (saved, trusted) = match std::fs::read(&path) {
            Ok(b) => match parse(&b, capacity) {
                Ok(s) => (s, true),
                Err(why) => {
                    let aside = path.with_extension("json.bad");
                    let moved = std::fs::rename(&path, &aside).is_ok();
                    tracing::error!(file = %path.display(), error = %why, moved_to = %aside.display(), moved, "device ids unusable; starting afresh, state keyed by the old ids is dropped");
                    (Saved::default(), false)
                }
            },
            Err(_) => (Saved::default(), false),
        };
        Self {
            path,
            saved,
            trusted,
            capacity,
        }
    }

    /// Whether ids are those of the last run: only then may kernel state
    /// that no saved record explains be kept under the id that holds it.
    pub fn trusted(&self) -> bool {
        self.trusted
    }

    /// The ids a running daemon gave `policy`'s devices, read only (for
    /// `explain`): a name the table does not hold gets an id no device
    /// has, so it matches no kernel state.
    pub fn apply_known(&self, policy: &mut Compiled) {
        let mut spare = self.saved.by_name.values().max().copied().unwrap_or(0) + 1;
        for d in &mut policy.devices {
            d.id = match self.saved.by_name.get(&d.name) {
                Some(id) => *id,
                None => {
                    spare += 1;
                    spare - 1
                }
            };
        }
    }

    /// Rewrites the ids of `policy`'s devices: known names keep theirs, new
    /// ones get fresh ids. Saves the table when it changed.
    pub fn assign(&mut self, policy: &mut Compiled) -> anyhow::Result<()> {
        let mut by_name: BTreeMap<String, u32> = BTreeMap::new();
        for d in &policy.devices {
            if let Some(id) = self.saved.by_name.get(&d.name) {
                by_name.insert(d.name.clone(), *id);
            }
        }
        let cap = self.capacity;
        let mut next = self.saved.next.max(1);
        // The ids taken, kept beside `by_name`: rebuilt for every new device,
        // a first start with 10,000 devices scanned 10,000 ids 10,000 times.
        let mut used: HashSet<u32> = by_name.values().copied().collect();
        for d in &mut policy.devices {
            let id = match by_name.get(&d.name) {
                Some(id) => *id,
                None => {
                    let id = (next..cap)
                        .chain(1..next)
                        .find(|i| !used.contains(i))
                        .with_context(|| format!("no free device id below max_devices ({cap})"))?;
                    next = if id + 1 >= cap { 1 } else { id + 1 };
                    by_name.insert(d.name.clone(), id);
                    used.insert(id);
                    id
                }
            };
            d.id = id;
        }
        let saved = Saved { by_name, next };
        if saved != self.saved {
            crate::private::write_atomic(&self.path, &serde_json::to_vec_pretty(&saved)?)?;
            self.saved = saved;
        }
        Ok(())
    }
}

/// The table, or what is wrong with it (JSON errors carry line:column).
fn parse(bytes: &[u8], capacity: u32) -> Result<Saved, String> {
    let s: Saved = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut seen = std::collections::BTreeSet::new();
    for (name, id) in &s.by_name {
        if *id == 0 || *id >= capacity {
            return Err(format!(
                "device {name:?} has id {id}, outside 1..{capacity} (max_devices)"
            ));
        }
        if !seen.insert(*id) {
            return Err(format!(
                "id {id} is held by more than one device ({name:?} among them)"
            ));
        }
    }
    if s.next >= capacity {
        return Err(format!(
            "next id {} is outside 1..{capacity} (max_devices)",
            s.next
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::CompiledDevice;
    use iotfence_common::consts::MAX_DEVICES;

    fn policy<S: AsRef<str>>(names: &[S]) -> Compiled {
        Compiled {
            profiles: Vec::new(),
            default_profile: 0,
            devices: names
                .iter()
                .enumerate()
                .map(|(i, n)| CompiledDevice {
                    id: i as u32 + 1,
                    name: n.as_ref().to_string(),
                    profile: 0,
                    mac: None,
                    nets: Vec::new(),
                    mac_or_ip: false,
                })
                .collect(),
            warnings: Vec::new(),
            files: Vec::new(),
        }
    }

    fn ids(p: &Compiled) -> Vec<(String, u32)> {
        p.devices.iter().map(|d| (d.name.clone(), d.id)).collect()
    }

    #[test]
    fn ids_survive_edits_and_restarts_and_are_not_reused_at_once() {
        let dir = std::env::temp_dir().join(format!("iotfence-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut t = DeviceIds::load(&dir, MAX_DEVICES);
        let mut p = policy(&["a", "b", "c"]);
        t.assign(&mut p).unwrap();
        assert_eq!(ids(&p), [("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]);
        // Insert before, remove one: the others keep their ids, the newcomer
        // does not get b's.
        let mut p = policy(&["new", "a", "c"]);
        t.assign(&mut p).unwrap();
        assert_eq!(
            ids(&p),
            [("new".into(), 4), ("a".into(), 1), ("c".into(), 3)]
        );
        // A restart reads them back.
        let mut t = DeviceIds::load(&dir, MAX_DEVICES);
        let mut p = policy(&["c", "a", "new"]);
        t.assign(&mut p).unwrap();
        assert_eq!(
            ids(&p),
            [("c".into(), 3), ("a".into(), 1), ("new".into(), 4)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unusable_table_is_moved_aside_and_not_trusted() {
        let dir = std::env::temp_dir().join(format!("iotfence-ids-bad-{}", std::process::id()));
        for (bad, why) in [
            (&b"{\"by_name\": {\"a\": 1,"[..], "EOF"),
            (
                b"{\"by_name\": {\"a\": 1, \"b\": 1}, \"next\": 2}",
                "more than one",
            ),
            (b"{\"by_name\": {\"a\": 99999}, \"next\": 2}", "outside"),
        ] {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("device-ids.json"), bad).unwrap();
            assert!(parse(bad, MAX_DEVICES).unwrap_err().contains(why), "{why}");
            let mut t = DeviceIds::load(&dir, MAX_DEVICES);
            assert!(!t.trusted());
            assert!(dir.join("device-ids.json.bad").exists());
            let mut p = policy(&["b", "a"]);
            t.assign(&mut p).unwrap();
            assert_eq!(ids(&p), [("b".into(), 1), ("a".into(), 2)]);
            assert!(
                DeviceIds::load(&dir, MAX_DEVICES).trusted(),
                "the new table is"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `n` devices named d0, d1, ...
    fn numbered(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i}")).collect()
    }

    /// New ids wrap within the configured capacity, past the default's
    /// bound when the capacity is larger; a table with ids beyond a
    /// lowered capacity is unusable.
    #[test]
    fn ids_wrap_within_the_configured_capacity() {
        let dir = std::env::temp_dir().join(format!("iotfence-ids-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut t = DeviceIds::load(&dir, 16);
        let mut p = policy(&numbered(15));
        t.assign(&mut p).unwrap();
        assert_eq!(p.devices.last().unwrap().id, 15);
        assert!(
            t.assign(&mut policy(&numbered(16))).is_err(),
            "16 devices need 17 slots"
        );
        // Drop d0, add one: it gets id 1 (the cursor wrapped), not 16.
        let mut p = policy(&numbered(16));
        p.devices.remove(0);
        t.assign(&mut p).unwrap();
        assert_eq!(
            p.devices.last().map(|d| (d.name.as_str(), d.id)),
            Some(("d15", 1))
        );
        assert!(
            !DeviceIds::load(&dir, 15).trusted(),
            "id 15 is beyond 1..15"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let mut t = DeviceIds::load(&dir, 10_001);
        let mut p = policy(&numbered(10_000));
        t.assign(&mut p).unwrap();
        assert_eq!(p.devices.last().unwrap().id, 10_000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
