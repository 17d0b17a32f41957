//! The VLAN filter of trunk interfaces (`vlans:` in the configuration),
//! written by ifindex before the programs are attached there, so the first
//! frame judged on a trunk is judged by it.

use iotfence_common::VlanSet;

use super::maps::Maps;

/// Makes `ifindex` a trunk that judges `vlans` (and untagged frames), or,
/// with `None`, an interface whose every frame is judged.
pub fn set(maps: &mut Maps, ifindex: u32, vlans: Option<&[u16]>) -> anyhow::Result<()> {
    match vlans {
        Some(ids) => {
            let mut set = VlanSet::untagged();
            for &id in ids {
                set.insert(id);
            }
            maps.trunks.insert(ifindex, set, 0)?;
        }
        // Only what is there: a delete of a missing key fails (ENOENT).
        None if maps.trunks.get(&ifindex, 0).is_ok() => maps.trunks.remove(&ifindex)?,
        None => {}
    }
    Ok(())
}
