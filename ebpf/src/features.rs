//! Kernel features chosen at load time (`consts::features`). The daemon sets
//! `IOTF_FEATURES` before loading; the value lives in the object's frozen
//! `.rodata`, so the verifier treats it as a constant and prunes the code
//! of absent features (helpers an old kernel does not know included).

use aya_ebpf::Global;
use iotfence_common::consts::features;

/// Written by the daemon through `EbpfLoader::override_global`; 0 (every
/// optional feature off) works on every supported kernel.
#[unsafe(no_mangle)]
static IOTF_FEATURES: Global<u32> = Global::new(0);

#[inline(always)]
fn has(bit: u32) -> bool {
    // `load` is a volatile read: LLVM cannot fold the initializer (0) in.
    IOTF_FEATURES.load() & bit != 0
}

#[inline(always)]
pub fn coarse_clock() -> bool {
    has(features::COARSE_CLOCK)
}

#[inline(always)]
pub fn xdp_load_bytes() -> bool {
    has(features::XDP_LOAD_BYTES)
}

#[inline(always)]
pub fn dns_redirect() -> bool {
    has(features::DNS_REDIRECT)
}

/// Each device's DNS query budget (`consts::features::QUERY_*`); the
/// defaults match the daemon's (20 per second, bursts of 100).
#[unsafe(no_mangle)]
static IOTF_QUERY_INTERVAL_NS: Global<u64> = Global::new(50_000_000);
#[unsafe(no_mangle)]
static IOTF_QUERY_BURST_NS: Global<u64> = Global::new(5_000_000_000);

#[inline(always)]
pub fn query_interval_ns() -> u64 {
    IOTF_QUERY_INTERVAL_NS.load()
}

#[inline(always)]
pub fn query_burst_ns() -> u64 {
    IOTF_QUERY_BURST_NS.load()
}
