//! Policy parser and compiler on any text (see `iotfence_tests::fuzz_policy`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iotfence_tests::fuzz_policy::check(data));
