//! The veth path of benchmark part 2 (and of the DNS and control parts'
//! loads): 64-byte frames from many devices, generated in the kernel, into
//! the router's IoT interface, judged by iotfence (XDP or TC) or by
//! nftables with the same policy, and forwarded to a sink. Measured: packets the router handled per second,
//! packets forwarded, and router CPU per packet.
//!
//! Topology (namespaces, removed on drop):
//! `gen` ──veth── `router` (iot0 → forwarding → wan0) ──veth── `sink`.
//! - The generator sends XDP_TX live frames (`floor::send_live`) out of
//!   `gen0` from CPU 0: a veth peer receives them as if from a NIC.
//! - The router's receive work (iot0's NAPI) runs in a thread pinned to
//!   CPU 1, so the router's capacity is what one core sustains, and its
//!   CPU time is read from /proc/stat.
//! - The sink drops what arrives with an XDP program; its receive work runs
//!   on the router's CPU too (veth transmit schedules it there), the same
//!   for every filter.
//!
//! `fleet.rs` holds the devices, their policy and frames, `generator.rs`
//! the in-kernel traffic generator, `topology.rs` the namespaces and what
//! is measured there, `guards.rs` what tears a filter or a load down, and
//! `cpu.rs` CPU pinning and accounting.

mod cpu;
mod fleet;
mod generator;
mod guards;
mod topology;

pub use cpu::ticks_per_second;
pub use fleet::Fleet;
pub use guards::{Applied, Load};
pub use topology::Topology;

pub const GEN_CPU: usize = 0;
pub const ROUTER_CPU: usize = 1;

/// Which frames the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Every frame forbidden: a flood.
    Flood,
    /// Each frame allowed or forbidden with even odds.
    Half,
    /// Every frame allowed.
    Allowed,
}

/// What judges the device's packets on the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// No filter: every frame is routed (the forwarding cost alone).
    None,
    /// An XDP program on iot0 that only returns XDP_DROP: the most any
    /// filter on this path can handle (its physical limit).
    XdpDrop,
    /// The reference allowlist (`reference.rs`) as an XDP program on iot0,
    /// loaded with the fleet: what the least an XDP allowlist does achieves
    /// on this path, the yardstick of the CI gate.
    Reference,
    IotfenceXdp,
    IotfenceTc,
    /// nftables netdev ingress chain with named sets (drops before routing).
    NftNetdev,
    /// nftables inet forward chain with conntrack, as dnsmasq `--nftset`
    /// deployments run it.
    NftForward,
}

impl Filter {
    pub const ALL: [Filter; 7] = [
        Filter::None,
        Filter::XdpDrop,
        Filter::Reference,
        Filter::IotfenceXdp,
        Filter::IotfenceTc,
        Filter::NftNetdev,
        Filter::NftForward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Filter::None => "no filter",
            Filter::XdpDrop => "XDP_DROP only (the path's limit)",
            Filter::Reference => "reference allowlist (XDP, raw BPF)",
            Filter::IotfenceXdp => "iotfence XDP",
            Filter::IotfenceTc => "iotfence TC",
            Filter::NftNetdev => "nftables netdev ingress, sets",
            Filter::NftForward => "nftables inet forward + conntrack, sets",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::XdpDrop => "xdp_drop",
            Filter::Reference => "reference_xdp",
            Filter::IotfenceXdp => "iotfence_xdp",
            Filter::IotfenceTc => "iotfence_tc",
            Filter::NftNetdev => "nft_netdev",
            Filter::NftForward => "nft_forward_ct",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Frames iot0 received and the router processed, per second.
    pub handled_pps: f64,
    /// Frames that reached the sink, per second.
    pub forwarded_pps: f64,
    /// Share of the router CPU busy (not idle, not stolen by the host).
    pub cpu_busy: f64,
    pub cpu_ns_per_packet: f64,
}
