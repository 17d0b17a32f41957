//! A userspace model of the kernel's egress judge and inbound observer
//! (`ebpf/src/`: `parse`, `identity`, `flow`, `from_device`, `to_device`),
//! written from reading them but sharing none of their code: `iotfence
//! explain` decides with it, and the differential fuzz target and
//! `tests/tests/model.rs` run frames through it and the kernel and fail on
//! any disagreement in verdict, reason or device.
//!
//! The policy comes from the daemon's compiler (`Compiled`), matched here
//! by plain scans: a rule allows when any rule of any covering prefix does,
//! which is what the daemon's prefix folding and the kernel's LPM tries must
//! add up to. Flows are modelled without time (a run is far shorter than
//! any idle timeout); learned entries are either alive or expired. DNS
//! learning is off (the harness runs no DNS service), so no query is copied
//! and no answer held.
//!
//! `parse.rs` reads a frame as the kernel's parser does, `judge.rs` judges
//! and observes it; this file holds the policy and the state. Redirected
//! DNS (`dns.redirect`) is not modelled.

use std::{collections::HashMap, net::IpAddr};

use crate::policy::compile::Compiled;
use iotfence_common::PortRule;
use ipnet::IpNet;

pub use super::parse::{parse, Frag, Frame};

/// A flow as the kernel keys it, from the device's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum FlowId {
    Conn(IpAddr, IpAddr, u16, u16, u8),
    Train(IpAddr, IpAddr, u32, u8),
}

/// A flow's device and the MAC that opened it.
pub(super) type Owner = (u32, [u8; 6]);

/// A snapshot of the model's flows.
pub struct Flows(HashMap<FlowId, Owner>);

#[derive(Clone, Debug)]
pub(super) struct Device {
    pub(super) id: u32,
    pub(super) profile: u16,
    pub(super) mac: Option<[u8; 6]>,
    pub(super) nets: Vec<IpNet>,
    /// MAC and address must both match for this family (`match:
    /// mac-and-ip` with addresses of it).
    pub(super) bound: [bool; 2],
}

pub(super) struct Profile {
    pub(super) audit: bool,
    pub(super) egress: Vec<(IpNet, Vec<PortRule>)>,
    pub(super) inbound: Vec<(IpNet, Vec<PortRule>)>,
}

/// The model's verdict on one device-originated frame.
pub struct Model {
    pub(super) devices: Vec<Device>,
    pub(super) profiles: Vec<Profile>,
    pub(super) default_profile: u16,
    pub(super) flows: HashMap<FlowId, Owner>,
    /// The router's own IPv6 addresses (neighbour discovery to them is
    /// link traffic).
    pub(super) router_addrs: Vec<IpAddr>,
    /// (device, address) -> learned rules, each alive or expired.
    pub(super) learned: HashMap<(u32, IpAddr), Vec<(PortRule, bool)>>,
}

pub(super) fn family_index(a: &IpAddr) -> usize {
    if a.is_ipv4() {
        0
    } else {
        1
    }
}

fn rules(list: &[(IpNet, iotfence_common::RuleSet)]) -> Vec<(IpNet, Vec<PortRule>)> {
    list.iter()
        .map(|(n, r)| (*n, r.rules[..r.count as usize].to_vec()))
        .collect()
}

impl Model {
    /// `router_addrs`: the router's own IPv6 addresses.
    pub fn new(policy: &Compiled, router_addrs: Vec<IpAddr>) -> Self {
        let devices = policy
            .devices
            .iter()
            .map(|d| {
                let mut bound = [false; 2];
                if d.mac.is_some() && !d.mac_or_ip {
                    for n in &d.nets {
                        bound[family_index(&n.addr())] = true;
                    }
                }
                Device {
                    id: d.id,
                    profile: d.profile,
                    mac: d.mac,
                    nets: d.nets.clone(),
                    bound,
                }
            })
            .collect();
        let profiles = policy
            .profiles
            .iter()
            .map(|p| Profile {
                audit: p.mode == iotfence_common::Mode::Audit as u8,
                egress: rules(&p.egress),
                inbound: rules(&p.inbound),
            })
            .collect();
        Self {
            devices,
            profiles,
            default_profile: policy.default_profile,
            flows: HashMap::new(),
            router_addrs,
            learned: HashMap::new(),
        }
    }

    /// Forgets every flow (the fuzz target clears the kernel's too).
    pub fn forget_flows(&mut self) {
        self.flows.clear();
    }

    /// The flows, to put back when the kernel refused to run a frame.
    pub fn clone_flows(&self) -> Flows {
        Flows(self.flows.clone())
    }

    pub fn restore_flows(&mut self, saved: Flows) {
        self.flows = saved.0;
    }

    /// A learned entry as DNS learning writes it; `alive: false` = expired.
    pub fn learn(&mut self, device: u32, addr: IpAddr, rule: PortRule, alive: bool) {
        self.learned
            .entry((device, addr))
            .or_default()
            .push((rule, alive));
    }
}
