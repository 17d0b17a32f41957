//! Stable device ids. Counters, rate limits and learned addresses are keyed
//! by device id in the kernel, so a device must keep its id when the policy
//! is edited (devices inserted, reordered or removed) and across restarts.
//! Ids are kept by device name in `state_dir/device-ids.json`; a new device
//! gets an id no device held recently (a cursor that only moves forward and
//! wraps to the lowest free id), so it never inherits another's state.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::Context;
use iotfence_common::consts::MAX_DEVICES;
use serde::{Deserialize, Serialize};

use crate::compile::Compiled;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Saved {
    by_name: BTreeMap<String, u32>,
    /// The next id to hand out when it is free.
    next: u32,
}

pub struct DeviceIds {
    path: PathBuf,
    saved: Saved,
}

impl DeviceIds {
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join("device-ids.json");
        let saved = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable device ids");
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        Self { path, saved }
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
        let mut next = self.saved.next.max(1);
        for d in &mut policy.devices {
            let id = match by_name.get(&d.name) {
                Some(id) => *id,
                None => {
                    let used: Vec<u32> = by_name.values().copied().collect();
                    let id = (next..MAX_DEVICES)
                        .chain(1..next)
                        .find(|i| !used.contains(i))
                        .context("no free device id")?;
                    next = if id + 1 >= MAX_DEVICES { 1 } else { id + 1 };
                    by_name.insert(d.name.clone(), id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::CompiledDevice;

    fn policy(names: &[&str]) -> Compiled {
        Compiled {
            profiles: Vec::new(),
            default_profile: 0,
            devices: names
                .iter()
                .enumerate()
                .map(|(i, n)| CompiledDevice {
                    id: i as u32 + 1,
                    name: n.to_string(),
                    profile: 0,
                    mac: None,
                    nets: Vec::new(),
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
        let mut t = DeviceIds::load(&dir);
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
        let mut t = DeviceIds::load(&dir);
        let mut p = policy(&["c", "a", "new"]);
        t.assign(&mut p).unwrap();
        assert_eq!(
            ids(&p),
            [("c".into(), 3), ("a".into(), 1), ("new".into(), 4)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
