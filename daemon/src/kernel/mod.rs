//! The one place that touches BPF objects: loading the embedded object
//! and adopting its pins (`load`), the typed map handles and the check of
//! adopted pins against the object's own map definitions (`maps`), writing policies into maps (`apply`,
//! `batch`), raw syscalls aya does not wrap (`sys`), map fill levels
//! (`mapstat`), the pin layout and typed opening of pinned maps (`pins`),
//! bpffs (`bpffs`), kernel counters (`counters`), the
//! kernel's features (`probe`) and TC attachment for kernels without TCX
//! (`tc_legacy`).

pub mod apply;
pub mod batch;
pub mod bpffs;
pub mod counters;
pub mod load;
pub mod maps;
pub mod mapstat;
pub mod pins;
pub mod probe;
pub mod sys;
pub mod tc_legacy;
