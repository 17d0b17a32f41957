//! Reading the per-CPU counters: totals per (device, verdict, reason).

use iotfence_common::{
    consts::{GLOBAL_COUNTERS, MAX_DEVICES},
    reason::{counter_index, REASONS, VERDICTS},
    Counter, Reason, Verdict,
};

use crate::kernel::load::Maps;

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

/// Sum over CPUs of one (device, verdict, reason) counter.
pub fn counter(
    maps: &Maps,
    device: u32,
    verdict: Verdict,
    reason: Reason,
) -> anyhow::Result<Totals> {
    let per_cpu = maps
        .counters
        .get(&counter_index(device, verdict, reason), 0)?;
    Ok(sum(&per_cpu))
}

/// Every non-zero counter of the given devices.
pub fn nonzero(
    maps: &Maps,
    devices: impl Iterator<Item = u32>,
) -> anyhow::Result<Vec<(u32, Verdict, Reason, Totals)>> {
    let mut out = Vec::new();
    for d in devices.filter(|d| *d < MAX_DEVICES) {
        for v in VERDICTS {
            for r in REASONS {
                let t = counter(maps, d, v, r)?;
                if t.packets > 0 {
                    out.push((d, v, r, t));
                }
            }
        }
    }
    Ok(out)
}

pub fn global(maps: &Maps, index: u32) -> anyhow::Result<u64> {
    debug_assert!(index < GLOBAL_COUNTERS);
    Ok(maps.global.get(&index, 0)?.iter().sum())
}

/// Reads one counter from the maps pinned under `pin_dir` (no daemon needed).
pub fn pinned_counter(
    pin_dir: &std::path::Path,
    device: u32,
    verdict: Verdict,
    reason: Reason,
) -> anyhow::Result<Totals> {
    let map = pinned_per_cpu::<Counter>(pin_dir, iotfence_common::consts::map_names::COUNTERS)?;
    Ok(sum(&map.get(&counter_index(device, verdict, reason), 0)?))
}

/// Reads one global counter from the maps pinned under `pin_dir`.
pub fn pinned_global(pin_dir: &std::path::Path, index: u32) -> anyhow::Result<u64> {
    let map = pinned_per_cpu::<u64>(pin_dir, iotfence_common::consts::map_names::GLOBAL)?;
    Ok(map.get(&index, 0)?.iter().sum())
}

/// A per-CPU array pinned under `pin_dir/maps`.
fn pinned_per_cpu<V: aya::Pod>(
    pin_dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<aya::maps::PerCpuArray<aya::maps::MapData, V>> {
    use aya::maps::{Map, MapData, PerCpuArray};
    let data = MapData::from_pin(pin_dir.join("maps").join(name))?;
    Ok(PerCpuArray::try_from(Map::PerCpuArray(data))?)
}
