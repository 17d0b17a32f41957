//! The one place that touches BPF objects: loading the embedded object
//! and adopting its pins (`load`), writing policies into maps (`apply`,
//! `batch`), raw syscalls aya does not wrap (`sys`), map fill levels
//! (`mapstat`), bpffs (`bpffs`), kernel counters (`counters`), the
//! kernel's features (`probe`) and TC attachment for kernels without TCX
//! (`tc_legacy`).

pub mod apply;
pub mod batch;
pub mod bpffs;
pub mod counters;
pub mod load;
pub mod mapstat;
pub mod probe;
pub mod sys;
pub mod tc_legacy;
