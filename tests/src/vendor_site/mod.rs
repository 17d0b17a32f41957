//! The vendor policy library as a lab site: policies/vendors/*.yaml as
//! shipped, included by a site policy that gives one simulated device to
//! each vendor profile. What a device must reach comes from compiling that
//! same policy (not from a list copied here), so a vendor file and its
//! probes cannot drift apart. Used by the vendor lab test and the demo.
//!
//! `plan.rs` derives each device's probes from the compiled policy,
//! `addrs.rs` says where an address is (and whether the lab serves it),
//! `probe.rs` sends the probes from a device.

mod addrs;
pub mod learn;
mod plan;
mod probe;

pub use addrs::*;
pub use plan::*;
pub use probe::*;

use anyhow::Context;
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr},
    path::Path,
    time::Duration,
};

use crate::{
    dns::Dnsmasq,
    lab::{DeviceSpec, Lab, Server, UdpEcho},
};
use iotfence::policy::compile::{load_path, Compiled};
use iotfence_common::consts::{PROTO_TCP, PROTO_UDP};

/// One lab device per vendor profile; the test fails when a profile of the
/// library has none here.
pub const DEVICES: [(&str, DeviceSpec); 7] = [
    (
        "casambi-cloud-gateway",
        dev("casambi-gw-1", "02:00:5e:10:00:01", 11),
    ),
    (
        "rafi-kis-me-device",
        dev("kis-box-1", "02:00:5e:10:00:02", 21),
    ),
    (
        "rafi-kis-manager",
        dev("kis-manager-ws-1", "02:00:5e:10:00:03", 25),
    ),
    (
        "mps-monitor-dca4",
        dev("mps-dca4-1", "02:00:5e:10:00:04", 31),
    ),
    (
        "weiss-simpati-gateway",
        dev("weiss-simpati-1", "02:00:5e:10:00:05", 41),
    ),
    (
        "sensorberg-access-hub",
        dev("sensorberg-hub-1", "02:00:5e:10:00:06", 51),
    ),
    (
        "sensorberg-device-bridge",
        dev("sensorberg-bridge-1", "02:00:5e:10:00:07", 52),
    ),
];

pub const fn dev(name: &'static str, mac: &'static str, host: u8) -> DeviceSpec {
    DeviceSpec { name, mac, host }
}

/// The site's variables, as site.example.yaml sets them but inside what the
/// lab serves: the internet namespace answers for all of 203.0.113.128/25
/// and 2001:db8:ff::1:0/112 (`ANY_V4`, `ANY_V6`). The printers sit in a
/// routed VLAN (203.0.113.240/29) so the router sees the DCA's traffic; the
/// Weiss endpoints include a host name, as the variable's kind allows. The
/// Sensorberg hub and bridge are the lab devices of those profiles.
pub const VARS: &str = r#"
vars:
  ntp_servers: [192.0.2.1]
  printer_networks: [203.0.113.240/29]
  weiss_azure_endpoints: [203.0.113.250, "2001:db8:ff::1:250", iotf-weiss-hub.azure-devices.net]
  sensorberg_backend_hosts: [203.0.113.251]
  sensorberg_access_hubs: [192.0.2.51]
  sensorberg_device_bridges: [192.0.2.52]
"#;

/// Addresses handed to DNS names: ANY_V4 below the ones `VARS` uses.
pub const NAME_ADDRS: std::ops::RangeInclusive<u8> = 129..=239;
/// A name no profile allows.
pub const FORBIDDEN_NAME: &str = "iotf-forbidden.evil.example";
/// Probed for a port an allowed destination does not allow, in this order.
pub const OTHER_PORTS: [(u8, u16); 5] = [
    (PROTO_TCP, 9),
    (PROTO_TCP, 7),
    (PROTO_TCP, 19),
    (PROTO_UDP, 9),
    (PROTO_UDP, 7),
];
pub const T: Duration = Duration::from_secs(1);
/// Starts the failure of a probe whose name did not resolve as planned.
pub const LOOKUP: &str = "lookup ";

pub fn diagnostics(d: Vec<iotfence::diag::Diagnostic>) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The site policy: every vendor file included, `VARS`, one device each.
pub fn write_site(lab: &Lab) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/vendors");
    let dst = lab.dir.join("vendors");
    std::fs::create_dir_all(&dst).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut site = String::from("include:\n");
    for f in &files {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
        site.push_str(&format!("  - vendors/{f}\n"));
    }
    site.push_str(VARS);
    site.push_str("\ndevices:\n");
    for (profile, d) in &DEVICES {
        site.push_str(&format!(
            "  - name: {}\n    mac: \"{}\"\n    ip: {}\n    profile: {profile}\n",
            d.name,
            d.mac,
            d.ip()
        ));
    }
    site
}

/// A lab prepared for the vendor site: policy compiled, every probe planned,
/// servers for every probed port, dnsmasq answering every planned name.
pub struct VendorSite {
    pub config: std::path::PathBuf,
    pub compiled: Compiled,
    pub plans: Vec<Plan>,
    /// Endpoints not probed, with the reason.
    pub skipped: Vec<String>,
    pub dns: Dnsmasq,
    pub tcp: Vec<Server>,
    pub udp: Vec<UdpEcho>,
}

/// Writes the site into `lab`, compiles it, plans the probes and starts the
/// servers and dnsmasq (not the daemon).
pub fn prepare(lab: &Lab) -> anyhow::Result<VendorSite> {
    let site = write_site(lab);
    let config = lab.write_config_with("xdp", &site, "")?;
    let cfg_text = std::fs::read_to_string(&config)?;
    let cfg = iotfence::config::parse(&config, &cfg_text)
        .map_err(|d| anyhow::anyhow!("lab configuration:\n{}", diagnostics(d)))?;
    let compiled = load_path(&lab.dir.join("policy.yaml"), &cfg).map_err(|d| {
        anyhow::anyhow!(
            "lab site policy:\n{}\n--- policy ---\n{site}",
            diagnostics(d)
        )
    })?;

    // Every vendor profile has its device here.
    let covered: BTreeSet<&str> = DEVICES.iter().map(|(p, _)| *p).collect();
    let library: BTreeSet<&str> = compiled
        .profiles
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != compiled.default_profile as usize)
        .map(|(_, p)| p.name.as_str())
        .collect();
    anyhow::ensure!(
        library == covered,
        "vendor profiles {library:?} vs lab devices {covered:?} (DEVICES)"
    );

    // One fresh ANY_V4 address per name; the forbidden name matches nothing.
    let mut wanted: Vec<String> = compiled
        .profiles
        .iter()
        .flat_map(|p| p.domains.iter().map(|d| concrete(&d.pattern)))
        .collect();
    for p in &compiled.profiles {
        anyhow::ensure!(
            !p.domains.iter().any(|d| d.pattern.matches(FORBIDDEN_NAME)),
            "{}: allows {FORBIDDEN_NAME}",
            p.name
        );
    }
    wanted.push(FORBIDDEN_NAME.into());
    let mut names = BTreeMap::new();
    let mut next = NAME_ADDRS;
    for n in wanted {
        if let std::collections::btree_map::Entry::Vacant(e) = names.entry(n) {
            let host = next.next().context("more names than NAME_ADDRS")?;
            e.insert(IpAddr::V4(Ipv4Addr::new(203, 0, 113, host)));
        }
    }

    let mut skipped = Vec::new();
    let plans: Vec<Plan> = DEVICES
        .iter()
        .map(|(profile, d)| plan(&compiled, profile, d.name, &names, &mut skipped))
        .collect();

    // Servers on every port any probe uses, for all lab-served addresses.
    let probes = || {
        plans
            .iter()
            .flat_map(|p| p.required.iter().chain(&p.forbidden))
    };
    let tcp: BTreeSet<u16> = probes()
        .filter(|p| p.proto == PROTO_TCP)
        .map(|p| p.port)
        .collect();
    let udp: BTreeSet<u16> = probes()
        .filter(|p| p.proto == PROTO_UDP)
        .map(|p| p.port)
        .collect();
    let tcp = tcp
        .iter()
        .map(|port| Server::start_any(&lab.internet, *port))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let udp = udp
        .iter()
        .map(|port| UdpEcho::start_any(&lab.internet, *port))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let hosts: Vec<(String, IpAddr)> = names.iter().map(|(n, a)| (n.clone(), *a)).collect();
    let dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300)?;
    Ok(VendorSite {
        config,
        compiled,
        plans,
        skipped,
        dns,
        tcp,
        udp,
    })
}
