//! The kernel's counters, read-only: per (device, verdict, reason), the
//! global ones, and denied packets by (device, protocol, port). One handle
//! for the metrics, `/status`, the test harness and the lab, opened from the
//! pins so it needs no loaded datapath (and no daemon).

use std::path::Path;

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use iotfence_common::{
    consts::{map_names, GLOBAL_COUNTERS},
    reason::counter_index,
    Counter, Global, Reason, Verdict, ViolationKey,
};

use super::pins::open_pinned;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
}

/// A (device, verdict, reason) counter summed over CPUs.
pub fn sum(per_cpu: &[Counter]) -> Totals {
    per_cpu.iter().fold(Totals::default(), |t, c| Totals {
        packets: t.packets + c.packets,
        bytes: t.bytes + c.bytes,
    })
}

/// Read-only handles on the pinned counter maps.
pub struct Counters {
    counters: PerCpuArray<MapData, Counter>,
    global: PerCpuArray<MapData, u64>,
    pub violations: PerCpuHashMap<MapData, ViolationKey, Counter>,
}

impl Counters {
    pub fn open(pin_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            counters: open_pinned(pin_dir, map_names::COUNTERS)?,
            global: open_pinned(pin_dir, map_names::GLOBAL)?,
            violations: open_pinned(pin_dir, map_names::VIOLATIONS)?,
        })
    }

    /// The counter at `index` (see `reason::counter_index`), summed.
    pub fn counter_sum(&self, index: u32) -> anyhow::Result<Totals> {
        Ok(sum(&self.counters.get(&index, 0)?))
    }

    pub fn counter(&self, device: u32, verdict: Verdict, reason: Reason) -> anyhow::Result<Totals> {
        self.counter_sum(counter_index(device, verdict, reason))
    }

    /// A global counter, summed over CPUs.
    pub fn global(&self, g: Global) -> anyhow::Result<u64> {
        debug_assert!(g.index() < GLOBAL_COUNTERS);
        Ok(self.global.get(&g.index(), 0)?.iter().sum())
    }
}

/// One counter from the maps pinned under `pin_dir`.
pub fn pinned_counter(
    pin_dir: &Path,
    device: u32,
    verdict: Verdict,
    reason: Reason,
) -> anyhow::Result<Totals> {
    Counters::open(pin_dir)?.counter(device, verdict, reason)
}

/// One global counter from the maps pinned under `pin_dir`.
pub fn pinned_global(pin_dir: &Path, g: Global) -> anyhow::Result<u64> {
    Counters::open(pin_dir)?.global(g)
}
