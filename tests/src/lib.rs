//! Test support for iotfence: packet fixtures shared by tests and benchmarks,
//! a BPF_PROG_TEST_RUN harness, the network-namespace lab, and the bodies of
//! the fuzz targets in `fuzz/` (`fuzz_dns`, `fuzz_policy`, and `differential`
//! with its userspace `model` of the datapath), so the committed corpora
//! replay as plain tests too.

pub mod caps;
pub mod container;
pub mod daemon;
pub mod differential;
pub mod dns;
pub mod fixtures;
pub mod flood;
pub mod floor;
pub mod fuzz_dns;
pub mod fuzz_policy;
pub mod harness;
pub mod lab;
pub mod model;
pub mod netns;
pub mod observe;
pub mod packet;
pub mod privileged;
pub mod redirect;
pub mod reference;
pub mod scenario;
pub mod servers;
pub mod smoke;
pub mod trials;
pub mod vendor_site;
pub mod vlan;
pub mod vm;
