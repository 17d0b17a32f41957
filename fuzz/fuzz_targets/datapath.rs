//! Differential: frame sequences through the kernel programs
//! (BPF_PROG_TEST_RUN) and the userspace model; any disagreement panics
//! with the frame in hex (see `iotfence_tests::differential`). Needs root.
#![no_main]

use std::sync::{Mutex, OnceLock};

use iotfence_tests::{differential::Differential, privileged};

/// Loaded once per process: loading the programs takes far longer than
/// thousands of test runs.
fn differential() -> &'static Mutex<Differential> {
    static D: OnceLock<Mutex<Differential>> = OnceLock::new();
    D.get_or_init(|| {
        privileged::sweep_stale_pins();
        let d = Differential::new();
        privileged::remove_pins_at_exit(&d.h.pins.path);
        Mutex::new(d)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut d = differential().lock().unwrap();
    if let Err(e) = d.run_input(data) {
        panic!("kernel and model disagree: {e}");
    }
});
