//! DNS learner: a query, the profile's domain patterns and an answer (see
//! `iotfence_tests::fuzz_dns`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iotfence_tests::fuzz_dns::check(data));
