//! The one place that touches BPF objects:
//! - `object`: the embedded object; `load`: its programs and maps loaded;
//! - `attach`: programs into (an earlier daemon's) pinned links, detaching;
//! - `maps`: typed handles, and adopted pins checked against the object's
//!   own map definitions; `pins`: the pin layout, opening a pinned map;
//! - `apply`, `batch`: writing a policy into the maps;
//! - `counters`: the kernel's counters, read-only; `flows`: forgetting a
//!   device's flows (when its learning ends);
//! - `grants`: the epoch that voids the kernel's cached denials;
//! - `router_addrs`: the router's own addresses and the resolvers' places;
//! - `trunks`: the VLANs judged on trunk interfaces;
//! - `probe`: what this kernel supports; `tc_legacy`: TC without TCX;
//! - `verified`: adopting pinned programs instead of verifying them again;
//! - `sys`, `mapstat`, `bpffs`: raw syscalls, map fill levels, bpffs.

pub mod apply;
pub mod attach;
pub mod batch;
pub mod bpffs;
pub mod counters;
pub mod flows;
pub mod grants;
pub mod load;
pub mod maps;
pub mod mapstat;
pub mod object;
pub mod pins;
pub mod probe;
pub mod router_addrs;
pub mod sys;
pub mod tc_legacy;
pub mod trunks;
pub mod verified;
