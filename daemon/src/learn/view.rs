//! The policy as applied while devices are learned: each learning device
//! gets a stand-in profile of its own that allows nothing and audits
//! everything (so every destination is reported, none is hidden by a rule
//! that allows it), with `learning` set for the kernel. The configured
//! policy is untouched: ending a session applies it again as it is.

use iotfence_common::Mode;

use crate::policy::compile::{Compiled, CompiledProfile};

/// The stand-in profile's name for `device` (in events, status, metrics).
pub fn profile_name(device: &str) -> String {
    format!("learning@{device}")
}

/// `policy` with the devices `learning` (ids) moved to stand-in profiles;
/// `policy` itself when none is.
pub fn view(policy: &Compiled, learning: &[u32]) -> Compiled {
    let mut v = policy.clone();
    for d in v.devices.iter_mut().filter(|d| learning.contains(&d.id)) {
        d.profile = v.profiles.len() as u16;
        v.profiles.push(CompiledProfile {
            name: profile_name(&d.name),
            mode: Mode::Audit as u8,
            description: Some(format!("{} is being learned (iotfence learn)", d.name)),
            learning: true,
            ..Default::default()
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_learning_devices_move_and_the_policy_stays() {
        let cfg = crate::config::standalone(std::path::Path::new("p.yaml"));
        let text = "profiles:\n  p:\n    use: [dns]\n    egress:\n      - to: [api.example.com]\n        proto: tcp\n        ports: 443\ndevices:\n  - name: a\n    ip: 192.0.2.10\n    profile: p\n  - name: b\n    ip: 192.0.2.11\n    profile: p\n";
        let mut policy =
            crate::policy::compile::compile(std::path::Path::new("p.yaml"), text, &cfg).unwrap();
        for (i, d) in policy.devices.iter_mut().enumerate() {
            d.id = i as u32 + 1;
        }
        let v = view(&policy, &[2]);
        let b = v.devices.iter().find(|d| d.name == "b").unwrap();
        let p = &v.profiles[b.profile as usize];
        assert_eq!(
            (p.name.as_str(), p.mode, p.learning),
            ("learning@b", Mode::Audit as u8, true)
        );
        assert!(p.egress.is_empty() && p.domains.is_empty());
        let a = v.devices.iter().find(|d| d.name == "a").unwrap();
        assert_eq!(v.profiles[a.profile as usize].name, "p");
        assert_eq!(view(&policy, &[]), policy);
    }
}
