//! Map utilization: how many entries each pinned hash / LPM map holds,
//! counted from the kernel (not from what the daemon believes it wrote),
//! so kernel-filled maps (flows, violations) are covered too.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    path::Path,
};

use aya::maps::MapType;
use iotfence_common::consts::map_names;

use crate::kernel::sys::{self, BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_BATCH};

/// Entries and capacity of one map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub map: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

/// Every pinned map with a meaningful fill level: hash, LRU and LPM maps.
/// Arrays are always full and ring buffers have no entries, so they are
/// left out.
pub fn pinned(pin_dir: &Path) -> anyhow::Result<Vec<Usage>> {
    let mut out = Vec::new();
    for name in map_names::ALL {
        let map = super::pins::map_data(pin_dir, name)?;
        let info = map.info()?;
        let kind = info.map_type()?;
        let entries = match kind {
            MapType::Hash | MapType::LruHash => {
                count_batched(map.fd().as_fd(), info.key_size(), info.value_size())?
            }
            MapType::PerCpuHash | MapType::LruPerCpuHash | MapType::LpmTrie => {
                count_keys(map.fd().as_fd(), info.key_size())?
            }
            _ => continue,
        };
        out.push(Usage {
            map: name,
            entries,
            capacity: info.max_entries() as u64,
        });
    }
    Ok(out)
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 8]) -> io::Result<()> {
    // SAFETY: the callers' attrs point at their key and value buffers,
    // sized from the map's info, alive for the call.
    unsafe { sys::bpf(cmd, attr) }.map(drop)
}

/// One BPF_MAP_GET_NEXT_KEY walk: works for every map type, one syscall per
/// entry. Bounded by the map's capacity reported by the kernel plus slack
/// (entries inserted during the walk).
fn count_keys(fd: BorrowedFd<'_>, key_size: u32) -> io::Result<u64> {
    let mut key = vec![0u8; key_size as usize];
    let mut next = vec![0u8; key_size as usize];
    let mut n = 0u64;
    let mut first = true;
    loop {
        let mut attr = [0u64; 8];
        attr[0] = fd.as_raw_fd() as u64;
        attr[1] = if first { 0 } else { key.as_ptr() as u64 };
        attr[2] = next.as_mut_ptr() as u64;
        match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(n),
            Err(e) => return Err(e),
        }
        n += 1;
        first = false;
        std::mem::swap(&mut key, &mut next);
        if n > 1 << 24 {
            return Ok(n);
        }
    }
}

/// BPF_MAP_LOOKUP_BATCH: thousands of entries per syscall, for the big
/// kernel-filled hash maps (flows: up to 262,144 entries).
fn count_batched(fd: BorrowedFd<'_>, key_size: u32, value_size: u32) -> io::Result<u64> {
    let mut per_call: usize = 4096;
    let mut keys = vec![0u8; per_call * key_size as usize];
    let mut values = vec![0u8; per_call * value_size as usize];
    // Batch tokens are opaque to user space; the hash map's is a u32, the
    // buffers are sized for the largest (a key) to be safe.
    let token = (key_size as usize).max(8);
    let mut in_batch = vec![0u8; token];
    let mut out_batch = vec![0u8; token];
    let mut n = 0u64;
    let mut first = true;
    loop {
        let mut attr = [0u64; 8];
        attr[0] = if first { 0 } else { in_batch.as_ptr() as u64 };
        attr[1] = out_batch.as_mut_ptr() as u64;
        attr[2] = keys.as_mut_ptr() as u64;
        attr[3] = values.as_mut_ptr() as u64;
        attr[4] = per_call as u64 | ((fd.as_raw_fd() as u64) << 32);
        let r = bpf(BPF_MAP_LOOKUP_BATCH, &mut attr);
        let got = attr[4] & 0xffff_ffff;
        match r {
            Ok(()) => n += got,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(n + got),
            // One hash bucket holds more entries than fit: retry bigger.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && per_call < 1 << 20 => {
                per_call *= 4;
                keys.resize(per_call * key_size as usize, 0);
                values.resize(per_call * value_size as usize, 0);
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && first => {
                return count_keys(fd, key_size)
            }
            Err(e) => return Err(e),
        }
        first = false;
        std::mem::swap(&mut in_batch, &mut out_batch);
    }
}
