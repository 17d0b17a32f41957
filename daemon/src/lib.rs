//! iotfence: per-device egress allowlists for IoT networks, enforced by XDP
//! or TC programs on the IoT-facing interface.

pub mod apply;
pub mod bpffs;
pub mod bpfsys;
pub mod compile;
pub mod config;
pub mod datapath;
pub mod diag;
pub mod dns;
pub mod events;
pub mod exit;
pub mod ids;
pub mod kernel_probe;
pub mod links;
pub mod lock;
pub mod mapbatch;
pub mod mapstat;
pub mod metrics;
pub mod policy;
pub mod private;
pub mod router_addrs;
pub mod run;
pub mod sources;
pub mod stats;
pub mod tc_legacy;
pub mod watch;
