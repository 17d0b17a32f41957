//! The policies of the control-plane benchmark: 10,000 rules over several
//! profiles (with the live fleet's devices and rule, so traffic can run
//! through reloads), and 1,000 devices for the scrape. Documentation
//! addresses only.

use std::{fmt::Write, path::Path};

use crate::veth::Fleet;
use iotfence_common::Mac;

/// Rule entries (egress and inbound list items) of the big policy.
pub const RULES: usize = 10_000;
/// Profiles it spreads them over: the fleet's `sensor` and fillers.
pub const PROFILES: usize = 10;

/// Rule `i` of a filler list, as vendor documents list them: single hosts
/// and small networks, IPv4 and IPv6, TCP and UDP, ports and ranges. Every
/// rule names its own prefix (at most ~8 rules reach any one prefix, under
/// the 16 a prefix may carry), and none allows UDP 443 outside the fleet's
/// 203.0.113.0/28, so the fleet's forbidden frames stay forbidden.
/// `variant` moves every port, so two variants differ in every rule.
fn rule(p: usize, i: usize, variant: usize) -> String {
    let port = 1024 + (i * 7 + variant) % 40_000;
    let (to, proto, ports) = match i % 5 {
        0 => (
            format!("198.51.100.{}", (i / 5) % 256),
            "tcp",
            port.to_string(),
        ),
        1 => (
            format!("203.0.113.{}", (i / 5) % 256),
            "tcp",
            port.to_string(),
        ),
        // 32 /28s over both /24s; UDP ports stay above 443.
        2 => {
            let j = (i / 5) % 32;
            let net = if j < 16 { "198.51.100" } else { "203.0.113" };
            (
                format!("{net}.{}/28", (j % 16) * 16),
                "udp",
                format!("\"{port}-{}\"", port + 99),
            )
        }
        3 => (
            format!("2001:db8:ff::{p:x}:{i:x}"),
            "tcp",
            format!("[443, {port}]"),
        ),
        _ => (
            format!("2001:db8:ff:0:1:{p:x}:{i:x}:0/112"),
            "udp",
            port.to_string(),
        ),
    };
    format!("      - to: {to}\n        proto: {proto}\n        ports: {ports}\n")
}

/// The 10,000-rule policy: `fleet`'s policy (its devices, and its profile
/// `sensor` with its rule) grown with filler rules in `sensor` and
/// `PROFILES - 1` filler profiles of one device each.
pub fn big(fleet: &Fleet, variant: usize) -> String {
    let base = fleet.policy_yaml();
    // Fleet::policy_yaml writes `sensor`'s egress list last before the
    // devices: filler rules continue it.
    let (profiles, devices) = base
        .split_once("devices:\n")
        .expect("Fleet::policy_yaml lists profiles, then devices");
    assert!(profiles.ends_with('\n') && profiles.contains("  sensor:\n    egress:\n"));
    let own = profiles.matches("\n      - ").count();
    let per_profile = RULES / PROFILES;
    let mut y = profiles.to_string();
    for i in own..per_profile {
        y += &rule(0, i, variant);
    }
    for p in 1..PROFILES {
        let _ = write!(y, "  filler-{p}:\n    egress:\n");
        for i in 0..per_profile {
            y += &rule(p, i, variant);
        }
    }
    y += "devices:\n";
    y += devices;
    for p in 1..PROFILES {
        let _ = write!(
            y,
            "  - name: filler-dev-{p}\n    mac: {}\n    ip: 2001:db8:1::2:{p:x}\n    profile: filler-{p}\n",
            Mac([0x02, 0, 0, 0x02, 0, p as u8])
        );
    }
    y
}

/// `big`'s policy as a site would keep it: a file per profile (as vendors
/// publish them) and `site.yaml` with the devices; (file name, text) pairs.
pub fn split(big: &str) -> Vec<(String, String)> {
    let (profiles, devices) = big
        .split_once("devices:\n")
        .expect("big lists profiles, then devices");
    let profiles = profiles
        .strip_prefix("profiles:\n")
        .expect("big starts with its profiles");
    let mut files: Vec<(String, String)> = Vec::new();
    for line in profiles.split_inclusive('\n') {
        // A profile starts at two spaces of indent, its body is deeper.
        if let Some(name) = line.strip_prefix("  ").filter(|l| !l.starts_with(' ')) {
            let name = name.trim_end().trim_end_matches(':');
            files.push((format!("{name}.yaml"), "profiles:\n".to_string()));
        }
        files.last_mut().expect("a profile first").1 += line;
    }
    files.push(("site.yaml".into(), format!("devices:\n{devices}")));
    files
}

/// `devices` devices (MAC and one address in 2001:db8:1::/64 each) over
/// ten small profiles; each may reach 2001:db8:ff::10 on TCP 443.
pub fn many_devices(devices: usize) -> String {
    let mut y = String::from("profiles:\n");
    for p in 0..10 {
        let _ = write!(
            y,
            "  vendor-{p}:\n    egress:\n      - to: 2001:db8:ff::10\n        proto: tcp\n        ports: 443\n      - to: 198.51.100.{p}\n        proto: udp\n        ports: [123, 8883]\n"
        );
    }
    y += "devices:\n";
    for i in 0..devices {
        let _ = write!(
            y,
            "  - name: device-{i}\n    mac: {}\n    ip: {}\n    profile: vendor-{}\n",
            Mac(device_mac(i)),
            device_ip(i),
            i % 10
        );
    }
    y
}

pub fn device_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0x03, (i >> 8) as u8, i as u8]
}

pub fn device_ip(i: usize) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 3, i as u16)
}

/// Rule entries of a policy text: the items of every profile's egress and
/// inbound lists (one destination or source, one protocol, its ports).
pub fn rule_count(text: &str) -> anyhow::Result<usize> {
    let src = iotfence::policy::sources::parse(Path::new("policy.yaml"), text)
        .map_err(|d| anyhow::anyhow!("policy: {d:?}"))?;
    Ok(src
        .doc
        .profiles
        .values()
        .map(|p| p.value.egress.len() + p.value.inbound.len())
        .sum())
}
