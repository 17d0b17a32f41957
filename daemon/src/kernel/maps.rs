//! Typed handles on the maps the daemon writes, taken from the loaded
//! object, and the check that pins adopted from an earlier daemon match
//! this build's own map definitions (read from the embedded object, so
//! there is no second list to keep in step).

use std::path::Path;

use anyhow::{bail, Context};
use aya::maps::IterableMap;
use aya::{
    maps::{Array, HashMap, LpmTrie, MapData, RingBuf},
    Ebpf,
};
use aya_obj::maps::PinningType;
use iotfence_common::{
    consts::{device_map_entries, map_names as names},
    dns::DnsControl,
    values::FlowValue,
    BindKey, Config as KConfig, DeviceInfo, FlowKey, LearnedKey, LearnedRules, Lpm4, Lpm6, MacKey,
    ResentKey, RuleSet, VlanSet,
};

use super::{
    grants::Grants,
    object::{take, BPF_OBJECT},
};

/// Typed handles on every map the daemon reads or writes.
pub struct Maps {
    pub config: Array<MapData, KConfig>,
    pub default_device: Array<MapData, DeviceInfo>,
    pub device_by_mac: HashMap<MapData, MacKey, DeviceInfo>,
    pub device_bind: HashMap<MapData, BindKey, u32>,
    pub device_by_ip4: LpmTrie<MapData, Lpm4, DeviceInfo>,
    pub device_by_ip6: LpmTrie<MapData, Lpm6, DeviceInfo>,
    pub egress4: LpmTrie<MapData, Lpm4, RuleSet>,
    pub egress6: LpmTrie<MapData, Lpm6, RuleSet>,
    pub inbound4: LpmTrie<MapData, Lpm4, RuleSet>,
    pub inbound6: LpmTrie<MapData, Lpm6, RuleSet>,
    pub flows: HashMap<MapData, FlowKey, FlowValue>,
    pub resolvers: HashMap<MapData, [u8; 16], u32>,
    pub router_addrs: HashMap<MapData, [u8; 16], u32>,
    /// Trunk interfaces (ifindex) and the VLANs judged on them.
    pub trunks: HashMap<MapData, u32, VlanSet>,
    /// Where redirected DNS queries go, by family (`dns.redirect`).
    pub redirect_to: Array<MapData, [u8; 16]>,
    /// Bumped after writes that allow more (see `grants`).
    pub grants: Grants,
}

/// What DNS learning owns: the ring of copied queries and held answers,
/// the learned map (and its real capacity: an adopted one keeps the size it
/// was created with), the control entry with the heartbeat, and the
/// released DNS-over-TCP segments.
pub struct DnsMaps {
    pub ring: RingBuf<MapData>,
    pub learned: HashMap<MapData, LearnedKey, LearnedRules>,
    pub learned_capacity: usize,
    pub control: Array<MapData, DnsControl>,
    pub resent: HashMap<MapData, ResentKey, u32>,
    /// Bumped after learned addresses are written (see `grants`).
    pub grants: Grants,
}

impl DnsMaps {
    pub fn take(ebpf: &mut Ebpf, grants: Grants) -> anyhow::Result<Self> {
        let learned: HashMap<MapData, LearnedKey, LearnedRules> = take(ebpf, names::LEARNED)?;
        let learned_capacity = learned.map().info()?.max_entries() as usize;
        Ok(Self {
            ring: take(ebpf, names::DNS_FRAMES)?,
            learned,
            learned_capacity,
            control: take(ebpf, names::DNS_CONTROL)?,
            resent: take(ebpf, names::TCP_RESENT)?,
            grants,
        })
    }
}

impl Maps {
    pub fn take(ebpf: &mut Ebpf, grants: Grants) -> anyhow::Result<Self> {
        Ok(Self {
            config: take(ebpf, names::CONFIG)?,
            default_device: take(ebpf, names::DEFAULT_DEVICE)?,
            device_by_mac: take(ebpf, names::DEVICE_BY_MAC)?,
            device_bind: take(ebpf, names::DEVICE_BIND)?,
            device_by_ip4: take(ebpf, names::DEVICE_BY_IP4)?,
            device_by_ip6: take(ebpf, names::DEVICE_BY_IP6)?,
            egress4: take(ebpf, names::EGRESS4)?,
            egress6: take(ebpf, names::EGRESS6)?,
            inbound4: take(ebpf, names::INBOUND4)?,
            inbound6: take(ebpf, names::INBOUND6)?,
            flows: take(ebpf, names::FLOWS)?,
            resolvers: take(ebpf, names::RESOLVERS)?,
            router_addrs: take(ebpf, names::ROUTER_ADDRS)?,
            trunks: take(ebpf, names::TRUNKS)?,
            redirect_to: take(ebpf, names::REDIRECT_TO)?,
            grants,
        })
    }
}

/// A map the object defines, as the kernel would report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// Every pinned map the embedded object defines, by name.
pub fn pinned_definitions() -> anyhow::Result<Vec<(String, Shape)>> {
    let obj = aya_obj::Object::parse(BPF_OBJECT).context("parsing the embedded eBPF object")?;
    let mut out: Vec<(String, Shape)> = obj
        .maps
        .iter()
        .filter(|(_, m)| m.pinning() == PinningType::ByName)
        .map(|(name, m)| {
            let shape = Shape {
                map_type: m.map_type(),
                key_size: m.key_size(),
                value_size: m.value_size(),
                max_entries: m.max_entries(),
            };
            (name.clone(), shape)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A pinned map from an older build with the same name but another layout
/// would be misread by the new programs: refuse instead. Compared with the
/// object's own definitions: type, key and value size, capacity. The
/// learned map's capacity is configurable and an adopted one keeps its
/// size, so that one is not compared; the device-indexed maps
/// (`DEVICE_MAPS`) are compared with the configured capacity `devices`.
/// `defined`: `pinned_definitions()`, read once per load.
pub fn check_adopted(ebpf: &Ebpf, defined: &[(String, Shape)], devices: u32) -> anyhow::Result<()> {
    let mut larger = Vec::new();
    for (name, want) in defined {
        let map = ebpf
            .map(name)
            .with_context(|| format!("map {name} missing"))?;
        let info = data_of(map)
            .with_context(|| format!("map {name} has an unexpected type"))?
            .info()?;
        let have = Shape {
            map_type: info.map_type()? as u32,
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
        };
        let sized = device_map_entries(name, devices);
        let capacity_free = name == names::LEARNED || sized.is_some();
        let same = have.map_type == want.map_type
            && have.key_size == want.key_size
            && have.value_size == want.value_size
            && (capacity_free || have.max_entries == want.max_entries);
        if !same {
            bail!(
                "pinned map {name} is {have:?} but this build defines {want:?}; run `iotfence detach` to remove the old datapath"
            );
        }
        // A smaller pinned map would drop the devices beyond it (counters,
        // rate limits, lookups of a full hash). A larger one is kept: every
        // id the daemon hands out fits it, and refusing would leave the
        // router unprotected at boot over a setting that only saves memory;
        // the memory comes back at `iotfence detach`.
        match sized {
            Some(need) if have.max_entries < need => bail!(
                "pinned map {name} has room for {} entries but max_devices: {devices} needs {need}; run `iotfence detach` and restart the daemon to recreate the maps at that size (enforcement is off in between)",
                have.max_entries
            ),
            Some(need) if have.max_entries > need => larger.push(name.as_str()),
            _ => {}
        }
    }
    if !larger.is_empty() {
        tracing::info!(
            maps = ?larger,
            max_devices = devices,
            "keeping the larger pinned device maps; `iotfence detach` and a restart shrink them to max_devices"
        );
    }
    Ok(())
}

/// Maps whose contents the daemon rebuilds on its own at start: the
/// learned map is written again from the saved DNS state (`dns::state`).
/// A pin of one of these in another layout (an upgrade that changed it) is
/// removed before the load, which then creates the map anew, instead of
/// refusing to start: the running programs keep their reference to the old
/// map until the new ones replace them in the links. Every other map holds
/// what no file restores (flows, counters), so a layout change there still
/// refuses (`check_adopted`).
const REBUILT: [&str; 1] = [names::LEARNED];

/// Removes the pins of `REBUILT` maps whose type, key or value size differ
/// from this build's `defined` ones; returns the names removed.
pub fn replace_rebuilt(map_dir: &Path, defined: &[(String, Shape)]) -> anyhow::Result<Vec<String>> {
    let mut removed = Vec::new();
    for (name, want) in defined
        .iter()
        .filter(|(n, _)| REBUILT.contains(&n.as_str()))
    {
        let pin = map_dir.join(name);
        if !pin.exists() {
            continue;
        }
        let info = MapData::from_pin(&pin)
            .with_context(|| format!("opening {}", pin.display()))?
            .info()?;
        let same = info.map_type()? as u32 == want.map_type
            && info.key_size() == want.key_size
            && info.value_size() == want.value_size;
        if !same {
            tracing::warn!(
                map = name.as_str(),
                key_size = info.key_size(),
                value_size = info.value_size(),
                want_key_size = want.key_size,
                want_value_size = want.value_size,
                "the pinned map has another build's layout; it is replaced and its entries written again from the saved state"
            );
            std::fs::remove_file(&pin).with_context(|| format!("removing {}", pin.display()))?;
            removed.push(name.clone());
        }
    }
    Ok(removed)
}

pub(super) fn data_of(map: &aya::maps::Map) -> Option<&MapData> {
    use aya::maps::Map::*;
    match map {
        Array(m) | HashMap(m) | LpmTrie(m) | LruHashMap(m) | PerCpuArray(m)
        | PerCpuLruHashMap(m) | PerCpuHashMap(m) | RingBuf(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotfence_common::consts::{MAP_VERSION, MAX_DEVICES};

    /// The object defines the device-indexed maps for the default
    /// capacity, which `DEVICE_MAPS` must reproduce (a pin made by an
    /// older daemon at the default then matches the default setting).
    #[test]
    fn device_maps_are_defined_for_the_default_capacity() {
        let defined = pinned_definitions().unwrap();
        for (name, _) in iotfence_common::consts::DEVICE_MAPS {
            let (_, shape) = defined
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{name} is not pinned"));
            assert_eq!(
                Some(shape.max_entries),
                device_map_entries(name, MAX_DEVICES),
                "{name}"
            );
        }
    }

    /// Every map the object pins carries the versioned prefix and is
    /// listed once in `map_names::ALL` (detach, fill levels), and the list
    /// names no map the object lacks.
    #[test]
    fn every_pinned_map_is_versioned_and_listed_once() {
        let defined = pinned_definitions().unwrap();
        let prefix = format!("iotf{MAP_VERSION}_");
        for (name, _) in &defined {
            assert!(name.starts_with(&prefix), "{name} lacks {prefix}");
            assert!(name.len() <= 15, "{name}: the kernel keeps 15 bytes");
            let listed = names::ALL.iter().filter(|n| **n == name.as_str()).count();
            assert_eq!(
                listed, 1,
                "{name} is listed {listed} times in map_names::ALL"
            );
        }
        for n in names::ALL {
            assert!(
                defined.iter().any(|(d, _)| d == n),
                "map_names::ALL lists {n}, which the object does not pin"
            );
        }
    }
}
