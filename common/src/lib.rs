//! Types shared by the kernel programs (`iotfence-ebpf`) and the daemon.
//!
//! Every map key and value is `#[repr(C)]` with explicit padding so both sides
//! agree byte for byte; the `user` feature implements `aya::Pod` for them.
//! A daemon never adopts pins of another layout: it compares them with the
//! embedded object's own map definitions (`daemon/src/kernel/maps.rs`).
#![no_std]

pub mod codes;
pub mod consts;
pub mod dns;
pub mod event;
pub mod global;
pub mod keys;
pub mod mac;
pub mod reason;
pub mod values;

pub use event::ViolationEvent;
pub use global::Global;
pub use keys::{BindKey, FlowKey, LearnedKey, Lpm4, Lpm6, MacKey, ResentKey, ViolationKey};
pub use mac::Mac;
pub use reason::{Mode, Reason, Verdict};
pub use values::{
    Config, Counter, DeniedSlot, DeviceInfo, LearnedRule, LearnedRules, PortRule, RateState,
    RuleSet, VlanSet,
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, contain only integers and
    // byte arrays, and have explicit padding fields, so any bit pattern is valid.
    unsafe impl aya::Pod for MacKey {}
    unsafe impl aya::Pod for BindKey {}
    unsafe impl aya::Pod for Lpm4 {}
    unsafe impl aya::Pod for Lpm6 {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for ResentKey {}
    unsafe impl aya::Pod for ViolationKey {}
    unsafe impl aya::Pod for LearnedKey {}
    unsafe impl aya::Pod for DeviceInfo {}
    unsafe impl aya::Pod for PortRule {}
    unsafe impl aya::Pod for RuleSet {}
    unsafe impl aya::Pod for LearnedRules {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for Counter {}
    unsafe impl aya::Pod for DeniedSlot {}
    unsafe impl aya::Pod for RateState {}
    unsafe impl aya::Pod for VlanSet {}
    unsafe impl aya::Pod for values::FlowValue {}
    unsafe impl aya::Pod for ViolationEvent {}
    unsafe impl aya::Pod for dns::DnsControl {}
    unsafe impl aya::Pod for dns::RedirectKey {}
    unsafe impl aya::Pod for dns::RedirectValue {}
}
