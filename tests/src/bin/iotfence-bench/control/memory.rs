//! Kernel memory of the datapath, as the kernel reports it: `bytes_memlock`
//! of `bpftool map show` (the map's own accounting, `map_mem_usage`) for
//! every map the programs use and every pinned one. Per learned entry: two
//! learned-map capacities, the difference divided by theirs; per device:
//! policies of 10 and 1,000 devices applied to one datapath, the difference
//! divided by 990; per device slot (`max_devices`): the device-indexed maps
//! at two capacities, the difference divided by theirs.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv6Addr,
    path::Path,
    process::Command,
};

use anyhow::Context;
use iotfence::{clock::mono_ns, config, dns::table::key, kernel::load::Datapath, policy::compile};
use iotfence_common::{
    consts::{map_names, prog_names, DEVICE_MAPS, LEARNED_ENTRIES, MAX_DEVICES, PROTO_TCP},
    values::LearnedRules,
    PortRule,
};
use iotfence_tests::privileged::PinDir;
use serde_json::{json, Value};

/// One map's memory: (name, type, max_entries, bytes_memlock).
pub type Snapshot = BTreeMap<String, (String, u64, u64)>;

pub fn total(s: &Snapshot) -> u64 {
    s.values().map(|v| v.2).sum()
}

/// Every map of `dp` (those its programs reference, and the pinned ones),
/// by name, with the kernel's memory accounting.
fn snapshot(dp: &Datapath) -> anyhow::Result<Snapshot> {
    let mut ids = BTreeSet::new();
    for name in [
        prog_names::XDP,
        prog_names::TC_INGRESS,
        prog_names::TC_EGRESS,
    ] {
        let info = dp.program_info(name)?;
        ids.extend(info.map_ids()?.unwrap_or_default());
    }
    for name in map_names::ALL {
        ids.insert(
            iotfence::kernel::pins::map_data(&dp.pin_dir, name)?
                .info()?
                .id(),
        );
    }
    let out = Command::new("bpftool")
        .args(["-j", "map", "show"])
        .output()
        .context("running bpftool")?;
    anyhow::ensure!(out.status.success(), "bpftool -j map show failed");
    let all: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    let mut s = Snapshot::new();
    for m in all {
        let id = m["id"].as_u64().unwrap_or(0) as u32;
        if !ids.remove(&id) {
            continue;
        }
        let name = m["name"].as_str().unwrap_or("?").to_string();
        let kind = m["type"].as_str().unwrap_or("?").to_string();
        let bytes = m["bytes_memlock"]
            .as_u64()
            .with_context(|| format!("no bytes_memlock for map {name}"))?;
        s.insert(name, (kind, m["max_entries"].as_u64().unwrap_or(0), bytes));
    }
    anyhow::ensure!(ids.is_empty(), "bpftool does not list maps {ids:?}");
    Ok(s)
}

fn memlock(s: &Snapshot, map: &str) -> u64 {
    s.get(map).map(|v| v.2).unwrap_or(0)
}

/// A datapath with room for `learned` learned entries, and a config for it.
pub fn load(learned: u32) -> anyhow::Result<(Datapath, config::Config, PinDir)> {
    load_sized(learned, MAX_DEVICES)
}

/// `load`, with a device capacity of `devices` (`max_devices`).
fn load_sized(learned: u32, devices: u32) -> anyhow::Result<(Datapath, config::Config, PinDir)> {
    let pins = PinDir::new();
    let cfg = config::parse(
        Path::new("iotfence.yaml"),
        &format!(
            "interfaces: [iot0]\npolicy: policy.yaml\npin_dir: {}\nmax_devices: {devices}\ndns:\n  max_entries: {learned}\n",
            pins.path.display()
        ),
    )
    .map_err(|d| anyhow::anyhow!("config: {d:?}"))?;
    let dp = Datapath::load(&pins.path, &cfg.dns, cfg.max_devices)?;
    Ok((dp, cfg, pins))
}

fn apply_text(dp: &mut Datapath, cfg: &config::Config, text: &str) -> anyhow::Result<()> {
    let c = compile::compile(Path::new("policy.yaml"), text, cfg)
        .map_err(|d| anyhow::anyhow!("policy: {d:?}"))?;
    dp.apply(cfg, &c)?;
    Ok(())
}

/// `n` learned entries (TCP 443, an hour to live) for device 1.
fn fill_learned(dp: &mut Datapath, n: u32) -> anyhow::Result<()> {
    let v = LearnedRules::one(
        PortRule::new(PROTO_TCP, 443, 443),
        mono_ns() + 3_600_000_000_000,
    );
    for i in 0..n {
        let addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 1, (i >> 16) as u16, i as u16);
        dp.dns
            .as_mut()
            .context("DNS maps")?
            .learned
            .insert(key(1, addr.into()), v, 0)?;
    }
    Ok(())
}

fn table(s: &Snapshot) -> Value {
    s.iter()
        .map(|(n, (k, max, b))| json!({"map": n, "type": k, "max_entries": max, "bytes": b}))
        .collect()
}

/// The measurements, as JSON (rendered by `control`).
pub fn run(big_policy: &str, lpm_entries: usize, larger_learned: u32) -> anyhow::Result<Value> {
    let learned = map_names::LEARNED;
    // Default capacities, no policy: the fixed cost.
    let (mut dp, cfg, _pins) = load(LEARNED_ENTRIES)?;
    let fixed = snapshot(&dp)?;
    // Fill: a preallocated hash should not grow with it.
    let fill = 10_000;
    fill_learned(&mut dp, fill)?;
    let filled = memlock(&snapshot(&dp)?, learned);
    // Devices: 10, then 1,000 (the reload path: the 10-device generation
    // is cleared after the flip).
    apply_text(&mut dp, &cfg, &super::policy::many_devices(10))?;
    let d10 = snapshot(&dp)?;
    apply_text(&mut dp, &cfg, &super::policy::many_devices(1_000))?;
    let d1000 = snapshot(&dp)?;
    let per_device_maps: BTreeMap<&String, i64> = d1000
        .iter()
        .map(|(n, v)| (n, v.2 as i64 - memlock(&d10, n) as i64))
        .filter(|(_, d)| *d != 0)
        .collect();
    // The 10,000-rule policy's rule tries.
    apply_text(&mut dp, &cfg, big_policy)?;
    let big = snapshot(&dp)?;
    let rule_bytes: u64 = [map_names::EGRESS4, map_names::EGRESS6]
        .iter()
        .map(|m| memlock(&big, m))
        .sum();
    drop(dp);
    // A larger learned map.
    let (dp2, _, _pins2) = load(larger_learned)?;
    let larger = snapshot(&dp2)?;
    let per_entry = (memlock(&larger, learned) as f64 - memlock(&fixed, learned) as f64)
        / (larger_learned - LEARNED_ENTRIES) as f64;
    drop(dp2);
    // Per device slot: the device-indexed maps at a larger capacity.
    let larger_devices = 10_000;
    let (dp3, _, _pins3) = load_sized(LEARNED_ENTRIES, larger_devices)?;
    let sized = snapshot(&dp3)?;
    let slots = (larger_devices - MAX_DEVICES) as f64;
    let per_slot = |m: &str| (memlock(&sized, m) as f64 - memlock(&fixed, m) as f64) / slots;
    let slot_maps: BTreeMap<&str, f64> =
        DEVICE_MAPS.iter().map(|(m, _)| (*m, per_slot(m))).collect();
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)? as f64;
    Ok(json!({
        "fixed_total_bytes": total(&fixed),
        "fixed_maps": table(&fixed),
        "learned": {
            "capacities": [LEARNED_ENTRIES, larger_learned],
            "bytes": [memlock(&fixed, learned), memlock(&larger, learned)],
            "bytes_per_entry": per_entry,
            "filled_entries": fill,
            "bytes_after_fill": filled,
        },
        "devices": {
            "total_bytes_10": total(&d10),
            "total_bytes_1000": total(&d1000),
            "bytes_per_device": (total(&d1000) as f64 - total(&d10) as f64) / 990.0,
            "changed_maps": per_device_maps,
            "slots": [MAX_DEVICES, larger_devices],
            "slot_bytes": slot_maps.values().sum::<f64>(),
            "slot_bytes_by_map": slot_maps,
            "cpus": cpus,
            "slot_counter_bytes": per_slot(map_names::COUNTERS),
        },
        "rules": {
            "lpm_entries": lpm_entries,
            "egress_bytes": rule_bytes,
            "bytes_per_lpm_entry": rule_bytes as f64 / lpm_entries.max(1) as f64,
        },
    }))
}
