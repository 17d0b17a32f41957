//! The vendor policy library as a lab site: policies/vendors/*.yaml as
//! shipped, included by a site policy that gives one simulated device to
//! each vendor profile. What a device must reach comes from compiling that
//! same policy (not from a list copied here), so a vendor file and its
//! probes cannot drift apart. Used by the vendor lab test and the demo.

use anyhow::Context;
use std::{
    collections::{BTreeMap, BTreeSet},
    io::Read,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    path::Path,
    time::Duration,
};

use crate::{
    dns::{Dnsmasq, Stub},
    lab::{DeviceSpec, Lab, Server, UdpEcho, ROUTER_IOT_IP, SERVER_A, SERVER_A6, SERVER_B},
};
use hickory_proto::rr::RecordType;
use iotfence::{
    policy::compile::{load_path, Compiled, CompiledProfile},
    policy::pattern::Pattern,
};
use iotfence_common::{
    consts::{PROTO_ANY, PROTO_TCP, PROTO_UDP},
    PortRule,
};

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
  kis_ping_sources: [192.0.2.2]
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

/// One packet exchange from a device: a TCP connection that gets the
/// server's greeting, or a UDP datagram that comes back. `resolve` is looked
/// up first (and must answer `addr`), so DNS learning opens the way.
#[derive(Clone, Debug)]
pub struct Probe {
    pub what: String,
    pub resolve: Option<String>,
    pub addr: IpAddr,
    pub proto: u8,
    pub port: u16,
}

pub struct Plan {
    pub profile: String,
    pub device: &'static str,
    pub id: u32,
    pub audit: bool,
    pub required: Vec<Probe>,
    pub forbidden: Vec<Probe>,
}

pub fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

/// `a` lies in `net`/`len` (same family).
pub fn covers(net: IpAddr, len: u8, a: IpAddr) -> bool {
    let ((n, w), (x, wx)) = (bits(net), bits(a));
    let shift = u32::from(w.saturating_sub(len));
    w == wx && n.checked_shr(shift).unwrap_or(0) == x.checked_shr(shift).unwrap_or(0)
}

pub fn in_cidr(a: IpAddr, cidr: &str) -> bool {
    let (n, l) = cidr.split_once('/').unwrap();
    covers(n.parse().unwrap(), l.parse().unwrap(), a)
}

/// Where a static destination is: what may be probed, and why not.
pub enum Place {
    /// Served by the lab's internet namespace.
    Lab,
    /// DHCP and DNS to the router, broadcast, multicast: the `dhcp`/`dns`
    /// blocks, exercised by every lab test already.
    Infrastructure,
    /// Skipped, with the reason.
    Skip(&'static str),
}

pub fn place(a: IpAddr) -> Place {
    let lab_served = in_cidr(a, crate::lab::ANY_V4)
        || in_cidr(a, crate::lab::ANY_V6)
        || [SERVER_A, SERVER_B, SERVER_A6].contains(&a.to_string().as_str());
    if a.to_string() == ROUTER_IOT_IP || a.is_multicast() || a == Ipv4Addr::BROADCAST {
        Place::Infrastructure
    } else if in_cidr(a, "192.0.2.0/24") || in_cidr(a, "2001:db8:1::/64") {
        Place::Skip("on the IoT segment: switched between devices, never through the router")
    } else if !["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
        .iter()
        .any(|c| in_cidr(a, c))
    {
        Place::Skip("not a documentation address: the test never sends to it")
    } else if lab_served {
        Place::Lab
    } else {
        Place::Skip("a documentation address the lab does not serve")
    }
}

/// The address probed for a prefix: itself, or its first host.
pub fn representative(net: IpAddr, len: u8) -> IpAddr {
    let (n, w) = bits(net);
    let n = if len < w { n + 1 } else { n };
    match net {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}

/// The name a device looks up for a pattern.
pub fn concrete(p: &Pattern) -> String {
    match p {
        Pattern::Exact(n) => n.clone(),
        Pattern::Below(d) => format!("iotf-test.{d}"),
    }
}

pub fn allows(r: &PortRule, proto: u8, port: u16) -> bool {
    (r.proto == proto || r.proto == PROTO_ANY) && r.lo <= port && port <= r.hi
}

pub fn rules_of(set: &iotfence_common::RuleSet) -> &[PortRule] {
    &set.rules[..set.count as usize]
}

/// Everything `p` allows to `addr` once `name` (if any) resolved to it:
/// every matching pattern's rules, and the static rules covering it.
pub fn allowed(p: &CompiledProfile, name: Option<&str>, addr: IpAddr) -> Vec<PortRule> {
    let mut v: Vec<PortRule> = name
        .into_iter()
        .flat_map(|n| p.domains.iter().filter(move |d| d.pattern.matches(n)))
        .flat_map(|d| d.rules.iter().copied())
        .collect();
    for (net, set) in &p.egress {
        if covers(net.network(), net.prefix_len(), addr) {
            v.extend_from_slice(rules_of(set));
        }
    }
    v
}

/// Ports probed for a rule: both ends of a range (port 0 stands for 1).
pub fn ports(r: &PortRule) -> Vec<u16> {
    let mut v = vec![r.lo.max(1)];
    if r.hi > v[0] {
        v.push(r.hi);
    }
    v
}

pub fn proto_name(p: u8) -> &'static str {
    iotfence_common::consts::protocol_name(p).unwrap_or("?")
}

/// The probes a rule yields (TCP and UDP; `any` is probed as TCP), or why it
/// yields none.
pub fn rule_probes(
    r: &PortRule,
    what: &str,
    resolve: Option<&str>,
    addr: IpAddr,
) -> Result<Vec<Probe>, String> {
    let proto = match r.proto {
        PROTO_TCP | PROTO_UDP => r.proto,
        PROTO_ANY => PROTO_TCP,
        other => {
            return Err(format!(
                "{what} protocol {other}: only TCP and UDP are probed"
            ))
        }
    };
    Ok(ports(r)
        .into_iter()
        .map(|port| Probe {
            what: format!("{what} {}/{port}", proto_name(proto)),
            resolve: resolve.map(str::to_string),
            addr,
            proto,
            port,
        })
        .collect())
}

pub fn plan(
    compiled: &Compiled,
    profile: &str,
    device: &'static str,
    names: &BTreeMap<String, IpAddr>,
    skipped: &mut Vec<String>,
) -> Plan {
    let dev = compiled
        .devices
        .iter()
        .find(|d| d.name == device)
        .unwrap_or_else(|| panic!("device {device} not compiled"));
    let p = &compiled.profiles[dev.profile as usize];
    assert_eq!(p.name, profile, "device {device} has the wrong profile");
    let mut required = Vec::new();
    // A destination of the profile, for the port it does not allow.
    let mut some_destination: Option<(Option<String>, IpAddr)> = None;
    for d in &p.domains {
        let name = concrete(&d.pattern);
        let addr = names[&name];
        let what = format!("{name} ({:?})", d.pattern);
        for r in &d.rules {
            match rule_probes(r, &what, Some(&name), addr) {
                Ok(v) => required.extend(v),
                Err(why) => skipped.push(format!("{profile}: {why}")),
            }
        }
        some_destination.get_or_insert((Some(name), addr));
    }
    for (net, set) in &p.egress {
        let addr = representative(net.network(), net.prefix_len());
        let what = format!("{net} (at {addr})");
        match place(addr) {
            Place::Infrastructure => continue,
            Place::Skip(why) => {
                skipped.push(format!("{profile}: {what}: {why}"));
                continue;
            }
            Place::Lab => {}
        }
        for r in rules_of(set) {
            match rule_probes(r, &what, None, addr) {
                Ok(v) => required.extend(v),
                Err(why) => skipped.push(format!("{profile}: {why}")),
            }
        }
        some_destination.get_or_insert((None, addr));
    }

    let mut forbidden = Vec::new();
    // (a) A name outside the profile: it resolves, and its address stays shut.
    forbidden.push(Probe {
        what: format!("{FORBIDDEN_NAME} tcp/443 (name not in the profile)"),
        resolve: Some(FORBIDDEN_NAME.into()),
        addr: names[FORBIDDEN_NAME],
        proto: PROTO_TCP,
        port: 443,
    });
    // (b) An allowed destination on a port none of its rules names.
    match &some_destination {
        Some((name, addr)) => {
            let rules = allowed(p, name.as_deref(), *addr);
            let (proto, port) = OTHER_PORTS
                .into_iter()
                .find(|(proto, port)| !rules.iter().any(|r| allows(r, *proto, *port)))
                .unwrap_or_else(|| panic!("{profile}: every probe port is allowed to {addr}"));
            let dest = name.clone().unwrap_or(addr.to_string());
            forbidden.push(Probe {
                what: format!(
                    "{dest} {}/{port} (port not in the profile)",
                    proto_name(proto)
                ),
                resolve: name.clone(),
                addr: *addr,
                proto,
                port,
            });
        }
        None => skipped.push(format!(
            "{profile}: no destination the lab serves, so no forbidden-port probe"
        )),
    }
    // (c) A documentation address the profile does not name.
    let addr = [SERVER_A, SERVER_B, SERVER_A6]
        .iter()
        .map(|a| a.parse::<IpAddr>().unwrap())
        .find(|a| {
            !allowed(p, None, *a)
                .iter()
                .any(|r| allows(r, PROTO_TCP, 443))
        })
        .unwrap_or_else(|| panic!("{profile}: allows tcp/443 to every lab server"));
    forbidden.push(Probe {
        what: format!("{addr} tcp/443 (address not in the profile)"),
        resolve: None,
        addr,
        proto: PROTO_TCP,
        port: 443,
    });
    Plan {
        profile: profile.to_string(),
        device,
        id: dev.id,
        audit: p.mode == iotfence_common::Mode::Audit as u8,
        required,
        forbidden,
    }
}

/// Runs `probes` from inside the device's namespace; a failure description
/// per probe that did not go through.
pub fn run(lab: &Lab, device: &str, probes: Vec<Probe>) -> Vec<Result<(), String>> {
    lab.device(device)
        .run(move || {
            let mut stub = Stub::new(ROUTER_IOT_IP).expect("stub resolver");
            let mut resolved = BTreeSet::new();
            probes
                .iter()
                .map(|p| {
                    if let Some(name) = &p.resolve {
                        if resolved.insert(name.clone()) {
                            let got = stub.resolve(name, RecordType::A);
                            if got.as_deref() != Some(&[p.addr][..]) {
                                return Err(format!(
                                    "{LOOKUP}{name}: answer {got:?}, want {}",
                                    p.addr
                                ));
                            }
                        }
                    }
                    exchange(p).map_err(|e| format!("{}: {e}", p.what))
                })
                .collect()
        })
        .expect("device namespace thread")
}

pub fn exchange(p: &Probe) -> Result<(), String> {
    let target = SocketAddr::new(p.addr, p.port);
    if p.proto == PROTO_TCP {
        let mut s = TcpStream::connect_timeout(&target, T).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello)
            .map_err(|e| format!("no greeting: {e}"))?;
        return if &hello == b"hello" {
            Ok(())
        } else {
            Err("wrong greeting".into())
        };
    }
    let bind: SocketAddr = if p.addr.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    s.connect(target).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
    let token = format!("iotfence {}", p.what);
    s.send(token.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).map_err(|e| format!("no echo: {e}"))?;
    if &buf[..n] == token.as_bytes() {
        Ok(())
    } else {
        Err("wrong echo".into())
    }
}

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
