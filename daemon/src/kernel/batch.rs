//! Writing and removing many entries of one map with one syscall
//! (BPF_MAP_UPDATE_BATCH, BPF_MAP_DELETE_BATCH). A policy of 10,000 rules
//! is ~8,000 LPM entries per generation; one syscall each cost about as much
//! as the kernel's own work on them. Map types a kernel cannot batch get one
//! syscall per entry.

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
};

use aya::{maps::MapData, Pod};

use crate::kernel::sys::{
    self, BPF_MAP_DELETE_BATCH, BPF_MAP_DELETE_ELEM, BPF_MAP_UPDATE_BATCH, BPF_MAP_UPDATE_ELEM,
};

/// The kernel's ENOTSUPP (not in libc): no batch operations for the map type.
const ENOTSUPP: i32 = 524;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 8]) -> io::Result<()> {
    // SAFETY: every caller fills `attr` with pointers to its key and value
    // slices, which outlive the call.
    unsafe { sys::bpf(cmd, attr) }.map(drop)
}

/// The kernel has no batch operation for the map's type (it then wrote
/// nothing; per-entry errors are never these).
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | ENOTSUPP))
}

/// Inserts or replaces `keys[i]` -> `values[i]` in `map`, whose key and
/// value types must be `K` and `V` (as a typed aya map over it checks).
pub fn update<K: Pod, V: Pod>(map: &MapData, keys: &[K], values: &[V]) -> io::Result<()> {
    assert_eq!(keys.len(), values.len());
    if keys.is_empty() {
        return Ok(());
    }
    let fd = map.fd().as_fd().as_raw_fd() as u64;
    // struct bpf_attr.batch: in_batch, out_batch, keys, values,
    // count | map_fd << 32, elem_flags, flags.
    let mut attr = [0u64; 8];
    attr[2] = keys.as_ptr() as u64;
    attr[3] = values.as_ptr() as u64;
    attr[4] = keys.len() as u64 | (fd << 32);
    match bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
        Ok(()) => Ok(()),
        Err(e) if unsupported(&e) => {
            for (k, v) in keys.iter().zip(values) {
                let mut a = [0u64; 8];
                a[0] = fd;
                a[1] = k as *const K as u64;
                a[2] = v as *const V as u64;
                bpf(BPF_MAP_UPDATE_ELEM, &mut a)?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes `keys` from `map`, whose key type must be `K`. A key already
/// gone is no error (a batch stops at the first one: the rest are then
/// removed one by one).
pub fn delete<K: Pod>(map: &MapData, keys: &[K]) -> io::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let fd = map.fd().as_fd().as_raw_fd() as u64;
    let mut attr = [0u64; 8];
    attr[2] = keys.as_ptr() as u64;
    attr[4] = keys.len() as u64 | (fd << 32);
    match bpf(BPF_MAP_DELETE_BATCH, &mut attr) {
        Ok(()) => Ok(()),
        Err(e) if unsupported(&e) || e.raw_os_error() == Some(libc::ENOENT) => {
            for k in keys {
                let mut a = [0u64; 8];
                a[0] = fd;
                a[1] = k as *const K as u64;
                match bpf(BPF_MAP_DELETE_ELEM, &mut a) {
                    Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}
