//! The kernel's counters, read-only: per (device, verdict, reason), the
//! global ones, and denied packets by (device, protocol, port). One handle
//! for the metrics, `/status`, the test harness and the lab, opened from the
//! pins so it needs no loaded datapath (and no daemon).

use std::{collections::BTreeMap, path::Path};

use aya::maps::{MapData, PerCpuArray, PerCpuHashMap};
use iotfence_common::{
    consts::{map_names, COUNTER_SLOTS_PER_DEVICE, DENIED_SLOTS, GLOBAL_COUNTERS},
    dns::{REDIRECTED_ANSWERS, REDIRECTED_QUERIES},
    reason::counter_index,
    Counter, DeniedSlot, Global, Reason, Verdict, ViolationKey,
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
    violations: PerCpuHashMap<MapData, ViolationKey, Counter>,
    denied: PerCpuArray<MapData, DeniedSlot>,
    redirected: PerCpuArray<MapData, u64>,
}

impl Counters {
    pub fn open(pin_dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            counters: open_pinned(pin_dir, map_names::COUNTERS)?,
            global: open_pinned(pin_dir, map_names::GLOBAL)?,
            violations: open_pinned(pin_dir, map_names::VIOLATIONS)?,
            denied: open_pinned(pin_dir, map_names::DENIED)?,
            redirected: open_pinned(pin_dir, map_names::REDIRECTED)?,
        })
    }

    /// The device capacity the counter map was made for (`max_devices`
    /// when it was created; a kept larger pin has more): ids at or above
    /// it have no counters.
    pub fn devices(&self) -> u32 {
        self.counters.len() / COUNTER_SLOTS_PER_DEVICE
    }

    /// The counter at `index` (see `reason::counter_index`), summed.
    pub fn counter_sum(&self, index: u32) -> anyhow::Result<Totals> {
        Ok(sum(&self.counters.get(&index, 0)?))
    }

    pub fn counter(&self, device: u32, verdict: Verdict, reason: Reason) -> anyhow::Result<Totals> {
        self.counter_sum(counter_index(device, verdict, reason))
    }

    /// Denied packets by (device, verdict, protocol, port), summed over
    /// CPUs: the violation counters plus what the denial cache's slots
    /// still hold (moved there when a slot changes hands). Read in that
    /// order, a move between the two reads is missed, never counted
    /// twice; it shows at the next read (see `metrics::monotonic`).
    pub fn violations(&self) -> anyhow::Result<BTreeMap<ViolationKey, Totals>> {
        let mut out: BTreeMap<ViolationKey, Totals> = BTreeMap::new();
        let mut add = |k: ViolationKey, packets: u64, bytes: u64| {
            let t = out.entry(k).or_default();
            t.packets += packets;
            t.bytes += bytes;
        };
        for item in self.violations.iter() {
            let (k, per_cpu) = item?;
            let t = sum(&per_cpu);
            add(k, t.packets, t.bytes);
        }
        for i in 0..DENIED_SLOTS {
            for slot in self.denied.get(&i, 0)?.iter() {
                if slot.live == 1 && slot.packets != 0 {
                    add(slot.violation, slot.packets, slot.bytes);
                }
            }
        }
        Ok(out)
    }

    /// A global counter, summed over CPUs. Suppressed events include
    /// those the denial cache's slots still hold (`DeniedSlot::pending`),
    /// read after the counter, so that a move in between is missed once,
    /// never counted twice, as for `violations`.
    pub fn global(&self, g: Global) -> anyhow::Result<u64> {
        debug_assert!(g.index() < GLOBAL_COUNTERS);
        let mut n: u64 = self.global.get(&g.index(), 0)?.iter().sum();
        if g == Global::EventsSuppressed {
            for i in 0..DENIED_SLOTS {
                n += self
                    .denied
                    .get(&i, 0)?
                    .iter()
                    .map(|slot| slot.pending as u64)
                    .sum::<u64>();
            }
        }
        Ok(n)
    }
}

impl Counters {
    /// `dns.redirect`: queries redirected to the configured resolver and
    /// answers to them, summed over CPUs.
    pub fn redirected(&self) -> anyhow::Result<(u64, u64)> {
        let n =
            |slot: u32| -> anyhow::Result<u64> { Ok(self.redirected.get(&slot, 0)?.iter().sum()) };
        Ok((n(REDIRECTED_QUERIES)?, n(REDIRECTED_ANSWERS)?))
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
