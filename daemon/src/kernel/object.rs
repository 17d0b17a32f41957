//! The embedded eBPF object, and typed maps taken out of it once loaded.

use anyhow::Context;
use aya::Ebpf;

/// The compiled eBPF object, embedded at build time (daemon/build.rs).
pub static BPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/iotfence.bpf.o"));

/// Takes map `name` out of the loaded object as a typed handle.
pub fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &str,
) -> anyhow::Result<T> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} missing from the eBPF object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}
