//! The unit's capabilities on this machine's kernel (`iotfence_tests::caps`):
//! they suffice as user nobody, and each one is needed. The kernel matrix
//! measures the same in Debian's kernels.

#[test]
fn the_units_capabilities_suffice_and_each_is_needed() {
    let exe = env!("CARGO_BIN_EXE_iotfence-vm-suite");
    let lines = iotfence_tests::caps::measure(exe.as_ref()).unwrap_or_else(|e| panic!("{e:#}"));
    for l in &lines {
        eprintln!("{l}");
    }
    assert_eq!(lines.len(), iotfence::caps::NEEDED.len());
}
