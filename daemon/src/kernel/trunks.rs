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
            forget_gone(maps)?;
            maps.trunks.insert(ifindex, set, 0)?;
        }
        // Only what is there: a delete of a missing key fails (ENOENT).
        None if maps.trunks.get(&ifindex, 0).is_ok() => maps.trunks.remove(&ifindex)?,
        None => {}
    }
    Ok(())
}

/// Removes the entries of interfaces that no longer exist: a trunk
/// re-created again and again (a driver reload) comes back with a new
/// ifindex each time, and the map holds only `MAX_TRUNKS`.
fn forget_gone(maps: &mut Maps) -> anyhow::Result<()> {
    let gone: Vec<u32> = maps
        .trunks
        .keys()
        .filter_map(Result::ok)
        .filter(|&i| {
            let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
            // SAFETY: `name` has the IF_NAMESIZE bytes the call may write.
            unsafe { libc::if_indextoname(i, name.as_mut_ptr()) }.is_null()
        })
        .collect();
    for i in gone {
        maps.trunks.remove(&i)?;
    }
    Ok(())
}
