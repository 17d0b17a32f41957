//! What the DNS thread needs of a policy: each device's name and domain
//! rules.

use std::collections::HashMap;

use crate::policy::compile::{Compiled, DomainRule};

/// What the DNS thread needs of a policy.
#[derive(Clone, Debug, Default)]
pub struct DnsPolicy {
    pub learning: bool,
    /// By device id: name and the domain rules of its profile. Id 0 is every
    /// unknown device (the default profile) and has an empty name.
    pub devices: HashMap<u32, (String, Vec<DomainRule>)>,
}

impl DnsPolicy {
    pub fn of(p: &Compiled) -> Self {
        let mut devices = HashMap::new();
        devices.insert(
            0,
            (
                String::new(),
                p.profiles[p.default_profile as usize].domains.clone(),
            ),
        );
        for d in &p.devices {
            devices.insert(
                d.id,
                (
                    d.name.clone(),
                    p.profiles[d.profile as usize].domains.clone(),
                ),
            );
        }
        Self {
            learning: p.learns(),
            devices,
        }
    }

    pub(super) fn rules(&self, device: u32) -> Option<&[DomainRule]> {
        self.devices.get(&device).map(|(_, r)| r.as_slice())
    }

    pub(super) fn id_of(&self, name: &str) -> Option<u32> {
        self.devices
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id)
    }
}
