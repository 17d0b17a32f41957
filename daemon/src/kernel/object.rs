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

#[cfg(test)]
mod tests {
    use super::BPF_OBJECT;
    use iotfence_common::consts::prog_names;

    /// Every program's code is in its own section: the object's functions
    /// are the programs and the compiler's memory builtins, nothing else. A
    /// program body LLVM declined to inline shows here as one more function,
    /// reached by a BPF-to-BPF call on every packet.
    #[test]
    fn every_program_is_inlined_into_its_section() {
        if BPF_OBJECT.is_empty() {
            panic!("built with IOTFENCE_SKIP_EBPF=1: no eBPF object to check");
        }
        let obj = aya_obj::Object::parse(BPF_OBJECT).unwrap();
        let mut names: Vec<&str> = obj.functions.values().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        let mut want: Vec<&str> = prog_names::ALL.to_vec();
        want.extend(["memcpy", "memmove", "memset"]);
        want.sort_unstable();
        assert_eq!(names, want);
    }
}
