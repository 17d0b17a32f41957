//! The network-namespace lab: a router namespace whose IoT-facing veth
//! (`iot0`) carries iotfence, a switch namespace bridging the simulated
//! devices onto that segment, and an "internet" namespace with servers.
//! Addresses are documentation ranges only: IoT 192.0.2.0/24 and
//! 2001:db8:1::/64, internet 198.51.100.0/24, 203.0.113.0/24 and
//! 2001:db8:ff::/64. The internet namespace also answers for every address of
//! `ANY_V4` and `ANY_V6` (routes of type `local`), so tests can hand out
//! thousands of distinct server addresses. Everything is removed on drop.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::privileged::{PinDir, TempDir};

pub use crate::{
    daemon::{daemon_binary, Daemon},
    netns::{enter_ns, Netns},
    servers::{Server, UdpEcho},
};

pub const ROUTER_IOT_IP: &str = "192.0.2.1";

pub const ROUTER_WAN_IP: &str = "198.51.100.1";

/// Servers in the internet namespace.
pub const SERVER_A: &str = "198.51.100.7";

pub const SERVER_B: &str = "203.0.113.5";

pub const ROUTER_IOT_IP6: &str = "2001:db8:1::1";

pub const ROUTER_WAN_IP6: &str = "2001:db8:ff::1";

pub const SERVER_A6: &str = "2001:db8:ff::7";

/// Prefixes the internet namespace accepts connections on as a whole.
pub const ANY_V4: &str = "203.0.113.128/25";

pub const ANY_V6: &str = "2001:db8:ff::1:0/112";

pub struct DeviceSpec {
    pub name: &'static str,
    pub mac: &'static str,
    /// Host part in 192.0.2.0/24.
    pub host: u8,
}

impl DeviceSpec {
    pub fn ip(&self) -> String {
        format!("192.0.2.{}", self.host)
    }

    pub fn ip6(&self) -> String {
        format!("2001:db8:1::{:x}", self.host)
    }
}

/// The one-device site of tests about attachment rather than policy: a
/// camera (device id 1) allowed TCP 443 to 198.51.100.0/24, nothing else.
pub const CAMERA: DeviceSpec = DeviceSpec {
    name: "cam-1",
    mac: "02:00:5e:10:00:01",
    host: 10,
};
pub const CAMERA_POLICY: &str = r#"
profiles:
  camera:
    use: [dhcp, dns]
    egress:
      - to: 198.51.100.0/24
        proto: tcp
        ports: 443
devices:
  - name: cam-1
    mac: 02:00:5e:10:00:01
    profile: camera
"#;

pub struct Lab {
    pub router: Netns,
    pub switch: Netns,
    pub internet: Netns,
    pub devices: Vec<(Netns, String)>,
    pub servers: Vec<Server>,
    pub dir: TempDir,
    pub daemon: Option<Daemon>,
    // Last: detach after the daemon is gone.
    pub pins: PinDir,
}

/// The router's IoT interface and its switch port (`mac`: keep the one an
/// earlier iot0 had, so the devices' neighbour caches stay right); returns
/// when iot0 came to exist.
fn add_iot0(router: &Netns, switch: &Netns, mac: Option<&str>) -> anyhow::Result<Instant> {
    router.veth("iot0", "uplink", switch)?;
    let created = Instant::now();
    if let Some(mac) = mac {
        router.ip(&["link", "set", "iot0", "address", mac])?;
    }
    switch.ip(&["link", "set", "uplink", "master", "br0", "up"])?;
    router.ip(&["addr", "add", "192.0.2.1/24", "dev", "iot0"])?;
    router.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "iot0", "nodad"])?;
    router.ip(&["link", "set", "iot0", "up"])?;
    Ok(created)
}

impl Lab {
    /// Deletes the router's IoT interface and creates it again (same name
    /// and MAC, a new ifindex), as a driver reload or a netdev re-creation
    /// does; returns when it is up, with the moment it came to exist.
    pub fn recreate_iot0(&self) -> anyhow::Result<Instant> {
        let mac = self.router.link("iot0", false)?["address"]
            .as_str()
            .context("iot0 MAC")?
            .to_string();
        self.router.ip(&["link", "del", "iot0"])?;
        add_iot0(&self.router, &self.switch, Some(&mac))
    }

    /// Deletes the router's IoT interface (as at boot, before the network
    /// is configured).
    pub fn remove_iot0(&self) -> anyhow::Result<()> {
        self.router.ip(&["link", "del", "iot0"])
    }

    /// Creates the router's IoT interface as networking does at boot;
    /// returns when it is up, with the moment it came to exist.
    pub fn create_iot0(&self) -> anyhow::Result<Instant> {
        add_iot0(&self.router, &self.switch, None)
    }

    pub fn build(devices: &[DeviceSpec], ports: &[u16]) -> anyhow::Result<Self> {
        let pins = PinDir::new();
        let router = Netns::new("iotf-r")?;
        let switch = Netns::new("iotf-s")?;
        let internet = Netns::new("iotf-i")?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        add_iot0(&router, &switch, None)?;
        router.veth("wan0", "eth0", &internet)?;
        router.ip(&["addr", "add", "198.51.100.1/24", "dev", "wan0"])?;
        router.ip(&["addr", "add", "203.0.113.1/24", "dev", "wan0"])?;
        router.ip(&["addr", "add", "2001:db8:ff::1/64", "dev", "wan0", "nodad"])?;
        router.ip(&["link", "set", "wan0", "up"])?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        router.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        internet.ip(&["addr", "add", &format!("{SERVER_A}/24"), "dev", "eth0"])?;
        internet.ip(&["addr", "add", &format!("{SERVER_B}/24"), "dev", "eth0"])?;
        internet.ip(&[
            "addr",
            "add",
            &format!("{SERVER_A6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        internet.ip(&["link", "set", "eth0", "up"])?;
        internet.ip(&["route", "add", "192.0.2.0/24", "via", ROUTER_WAN_IP])?;
        internet.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            ROUTER_WAN_IP6,
        ])?;
        // Whole prefixes served by the internet namespace: the router routes
        // them to one neighbour, which treats every address in them as local.
        router.ip(&["route", "add", ANY_V4, "via", SERVER_A])?;
        router.ip(&["-6", "route", "add", ANY_V6, "via", SERVER_A6])?;
        internet.ip(&["route", "add", "local", ANY_V4, "dev", "lo"])?;
        internet.ip(&["-6", "route", "add", "local", ANY_V6, "dev", "lo"])?;
        let mut devs = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let ns = Netns::new("iotf-d")?;
            let port = format!("port{i}");
            ns.veth("eth0", &port, &switch)?;
            switch.ip(&["link", "set", &port, "master", "br0", "up"])?;
            ns.ip(&["link", "set", "eth0", "address", d.mac])?;
            ns.ip(&["addr", "add", &format!("{}/24", d.ip()), "dev", "eth0"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/64", d.ip6()),
                "dev",
                "eth0",
                "nodad",
            ])?;
            ns.ip(&["link", "set", "eth0", "up"])?;
            ns.ip(&["route", "add", "default", "via", ROUTER_IOT_IP])?;
            ns.ip(&["-6", "route", "add", "default", "via", ROUTER_IOT_IP6])?;
            devs.push((ns, d.name.to_string()));
        }
        // Link-local addresses finish duplicate address detection before
        // any test traffic: until then neighbour discovery stalls the first
        // IPv6 packets by a second or more.
        for ns in [&router, &switch, &internet]
            .into_iter()
            .chain(devs.iter().map(|(ns, _)| ns))
        {
            ns.wait_ipv6_ready(Duration::from_secs(5))?;
        }
        let mut servers = Vec::new();
        for addr in [SERVER_A, SERVER_B] {
            for p in ports {
                servers.push(Server::start(&internet, addr, *p)?);
            }
        }
        let dir = TempDir::new("iotfence-lab-")?;
        Ok(Self {
            router,
            switch,
            internet,
            devices: devs,
            servers,
            dir,
            daemon: None,
            pins,
        })
    }

    pub fn device(&self, name: &str) -> &Netns {
        &self
            .devices
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("no lab device {name}"))
            .0
    }

    /// Writes the daemon configuration and policy into the lab directory.
    pub fn write_config(&self, attach: &str, policy: &str) -> anyhow::Result<PathBuf> {
        self.write_config_with(attach, policy, "")
    }

    /// Like `write_config`, with more top-level configuration keys (YAML).
    pub fn write_config_with(
        &self,
        attach: &str,
        policy: &str,
        extra: &str,
    ) -> anyhow::Result<PathBuf> {
        self.write_config_for(attach, policy, &[ROUTER_IOT_IP], extra)
    }

    /// Like `write_config_with`, with these resolvers.
    pub fn write_config_for(
        &self,
        attach: &str,
        policy: &str,
        resolvers: &[&str],
        extra: &str,
    ) -> anyhow::Result<PathBuf> {
        std::fs::write(self.dir.join("policy.yaml"), policy)?;
        let cfg = self.dir.join("iotfence.yaml");
        let resolvers = resolvers.join(", ");
        std::fs::write(
            &cfg,
            format!(
                "interfaces: [iot0]\nattach: {attach}\npolicy: policy.yaml\nresolvers: [{resolvers}]\npin_dir: {}\nstate_dir: {}\nevents:\n  per_second: 50\n  burst: 50\n  file: {}\n{extra}",
                self.pins.path.display(),
                self.dir.join("state").display(),
                self.events_file().display()
            ),
        )?;
        Ok(cfg)
    }

    /// Where the lab's daemon appends its violation events.
    pub fn events_file(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Packets of `device` dropped for any reason.
    pub fn dropped(&self, device: u32) -> u64 {
        iotfence_common::reason::REASONS
            .iter()
            .map(|r| self.counter(device, iotfence_common::Verdict::Dropped, *r))
            .sum()
    }

    /// The learned-map entry of (device, address), read from the pins.
    pub fn learned(
        &self,
        device: u32,
        addr: std::net::IpAddr,
    ) -> Option<iotfence_common::LearnedRules> {
        self.learned_map()
            .get(&iotfence::dns::table::key(device, addr), 0)
            .ok()
    }

    fn learned_map(
        &self,
    ) -> aya::maps::HashMap<
        aya::maps::MapData,
        iotfence_common::LearnedKey,
        iotfence_common::LearnedRules,
    > {
        iotfence::kernel::pins::open_pinned(
            &self.pins.path,
            iotfence_common::consts::map_names::LEARNED,
        )
        .expect("opening the pinned learned map")
    }

    /// Learned-map entries of `device`.
    pub fn learned_count(&self, device: u32) -> usize {
        self.learned_map()
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.device == device)
            .count()
    }

    /// Starts `iotfence run` in the router namespace and waits until ready.
    pub fn start_daemon(&mut self, config: &Path) -> anyhow::Result<()> {
        let d = Daemon::start(&self.router, config)?;
        self.daemon = Some(d);
        Ok(())
    }

    /// A global (not per-device) kernel counter, summed over CPUs.
    pub fn global(&self, g: iotfence_common::Global) -> u64 {
        iotfence::kernel::counters::pinned_global(&self.pins.path, g)
            .expect("reading pinned globals")
    }

    pub fn counter(
        &self,
        device: u32,
        verdict: iotfence_common::Verdict,
        reason: iotfence_common::Reason,
    ) -> u64 {
        iotfence::kernel::counters::pinned_counter(&self.pins.path, device, verdict, reason)
            .expect("reading pinned counters")
            .packets
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        // `dir` (a TempDir) goes after this, with the daemon stopped.
    }
}
