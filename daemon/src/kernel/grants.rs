//! The grants epoch (`iotf1_grants`): the denial cache in the kernel holds
//! a denial only while the epoch is the one it was decided under (see
//! `ebpf/src/denied.rs`), so every write that can allow what was denied —
//! learned addresses, a policy, the router's addresses — bumps it, after
//! the write and before anything tells a device it may go ahead (a held
//! DNS answer's release, a generation switch). Shared by those writers;
//! one lock keeps the value rising when two bump at once.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use aya::{
    maps::{Array, MapData},
    Ebpf,
};
use iotfence_common::consts::map_names;

use super::object::take;

#[derive(Clone)]
pub struct Grants(Arc<Mutex<Array<MapData, u32>>>);

impl Grants {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(Mutex::new(take(ebpf, map_names::GRANTS)?))))
    }

    /// Voids every cached denial.
    pub fn bump(&self) -> anyhow::Result<()> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = map.get(&0, 0).context("reading the grants epoch")?;
        map.set(0, epoch.wrapping_add(1), 0)
            .context("bumping the grants epoch")
    }
}
