//! The IoT network on a VLAN sub-interface, as on a Debian router with
//! `eth1.20`: the device's frames arrive tagged on `eth1`, and iotfence is
//! attached to `eth1.20`; and behind a VLAN-filtering bridge, as on a
//! router whose switch ports are bridge ports (OpenWrt's DSA, a Debian
//! `br0` with `vlan_filtering 1`): the IoT device on an access port of
//! VLAN 20, another VLAN's host on VLAN 30, the router on `br0.20` and
//! `br0.30`. Run by the kernel matrix inside Debian's kernels (the guest
//! loads 8021q); this machine's own kernel has no 802.1Q.

use std::time::Duration;

use anyhow::ensure;

use crate::{
    daemon::Daemon,
    netns::Netns,
    privileged::{PinDir, TempDir},
    servers::Server,
};

const POLICY: &str = "
profiles:
  sensor:
    use: [dhcp, dns]
    egress:
      - to: 198.51.100.7
        proto: tcp
        ports: 443
devices:
  - name: sensor-1
    mac: 02:00:5e:10:00:01
    profile: sensor
";

/// On `attach`: the device reaches what its profile allows through the
/// sub-interface and nothing else, and the daemon says which hook it got.
pub fn run(attach: &str) -> anyhow::Result<()> {
    let router = Netns::new("vlr")?;
    let device = Netns::new("vld")?;
    let internet = Netns::new("vli")?;
    router.veth("eth1", "eth0", &device)?;
    router.veth("wan", "eth0", &internet)?;
    router.ips(&[
        "link set eth1 up",
        "link add link eth1 name eth1.20 type vlan id 20",
        "addr add 192.0.2.1/24 dev eth1.20",
        "link set eth1.20 up",
        "addr add 198.51.100.1/24 dev wan",
        "link set wan up",
    ])?;
    device.ips(&[
        "link set eth0 up",
        "link add link eth0 name eth0.20 type vlan id 20",
        "link set eth0.20 address 02:00:5e:10:00:01",
        "addr add 192.0.2.10/24 dev eth0.20",
        "link set eth0.20 up",
        "route add default via 192.0.2.1",
    ])?;
    let _servers = internet_side(&router, &internet)?;
    let t = Duration::from_millis(1500);
    ensure!(
        device.connect("198.51.100.8", 443, t),
        "the path works before iotfence"
    );

    let config = format!("interfaces: [eth1.20]\nattach: {attach}\n");
    let daemon = enforce(&router, &config)?;
    let log = daemon.log();
    ensure!(
        log.contains("interface=eth1.20"),
        "attached to the sub-interface:\n{log}"
    );
    allowed_only(&device, &daemon, "eth1.20")
}

/// Where iotfence sits behind the VLAN-filtering bridge.
#[derive(Clone, Copy, Debug)]
pub enum BridgeAttach {
    /// On the router's VLAN 20 interface `br0.20`.
    SubInterface(&'static str),
    /// On `br0` itself as a trunk (`vlans: {br0: [20]}`), with TC: the
    /// frames the bridge passes up carry their tag in skb metadata, which
    /// only TC reads.
    Trunk,
}

/// Behind a VLAN-filtering bridge: the IoT device (VLAN 20) reaches what
/// its profile allows and nothing else; the VLAN 30 host reaches what the
/// IoT device may not, untouched.
pub fn run_bridge(at: BridgeAttach) -> anyhow::Result<()> {
    let router = Netns::new("vbr")?;
    let device = Netns::new("vbd")?;
    let other = Netns::new("vbo")?;
    let internet = Netns::new("vbi")?;
    router.veth("eth1", "eth0", &device)?;
    router.veth("eth2", "eth0", &other)?;
    router.veth("wan", "eth0", &internet)?;
    router.ips(&[
        "link add br0 type bridge vlan_filtering 1",
        "link set eth1 master br0",
        "link set eth2 master br0",
        "link set eth1 up",
        "link set eth2 up",
        "link set br0 up",
        "link add link br0 name br0.20 type vlan id 20",
        "link add link br0 name br0.30 type vlan id 30",
        "addr add 192.0.2.1/24 dev br0.20",
        "addr add 203.0.113.1/24 dev br0.30",
        "link set br0.20 up",
        "link set br0.30 up",
        "addr add 198.51.100.1/24 dev wan",
        "link set wan up",
    ])?;
    // Access ports: untagged in their VLAN only; the bridge's own port
    // carries both VLANs tagged, to br0.20 and br0.30.
    for cmd in [
        "vlan del dev eth1 vid 1",
        "vlan del dev eth2 vid 1",
        "vlan add dev eth1 vid 20 pvid untagged",
        "vlan add dev eth2 vid 30 pvid untagged",
        "vlan add dev br0 vid 20 self",
        "vlan add dev br0 vid 30 self",
    ] {
        let args: Vec<&str> = std::iter::once("bridge")
            .chain(cmd.split_whitespace())
            .collect();
        router.exec(&args)?;
    }
    device.ips(&[
        "link set eth0 address 02:00:5e:10:00:01",
        "addr add 192.0.2.10/24 dev eth0",
        "link set eth0 up",
        "route add default via 192.0.2.1",
    ])?;
    other.ips(&[
        "addr add 203.0.113.10/24 dev eth0",
        "link set eth0 up",
        "route add default via 203.0.113.1",
    ])?;
    let _servers = internet_side(&router, &internet)?;
    let t = Duration::from_millis(1500);
    ensure!(
        device.connect("198.51.100.8", 443, t) && other.connect("198.51.100.8", 443, t),
        "the paths work before iotfence"
    );
    let (config, iface) = match at {
        BridgeAttach::SubInterface(attach) => (
            format!("interfaces: [br0.20]\nattach: {attach}\n"),
            "br0.20",
        ),
        BridgeAttach::Trunk => (
            "interfaces: [br0]\nvlans:\n  br0: [20]\nattach: tc\n".to_string(),
            "br0",
        ),
    };
    let daemon = enforce(&router, &config)?;
    allowed_only(&device, &daemon, iface)?;
    ensure!(
        other.connect("198.51.100.8", 443, t),
        "the VLAN 30 host was blocked through {iface}:\n{}",
        daemon.log()
    );
    Ok(())
}

/// The internet: 198.51.100.7 (which the sensor may reach) and .8 (which
/// it may not), each serving 443, behind the router's `wan`.
fn internet_side(router: &Netns, internet: &Netns) -> anyhow::Result<[Server; 2]> {
    internet.ips(&[
        "addr add 198.51.100.7/24 dev eth0",
        "addr add 198.51.100.8/24 dev eth0",
        "link set eth0 up",
        "route add default via 198.51.100.1",
    ])?;
    router.sysctl("net.ipv4.ip_forward", "1")?;
    Ok([
        Server::start(internet, "198.51.100.7", 443)?,
        Server::start(internet, "198.51.100.8", 443)?,
    ])
}

/// Starts the daemon in `router` with `config` (interfaces, attach mode)
/// and the sensor's policy.
fn enforce(router: &Netns, config: &str) -> anyhow::Result<Enforcing> {
    let pins = PinDir::new();
    let dir = TempDir::new("vlan")?;
    std::fs::write(dir.join("policy.yaml"), POLICY)?;
    let cfg = dir.join("iotfence.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{config}policy: policy.yaml\nresolvers: [192.0.2.1]\npin_dir: {}\nstate_dir: {}\nmetrics:\n  enabled: false\n",
            pins.path.display(),
            dir.join("state").display()
        ),
    )?;
    let daemon = Daemon::start(router, &cfg)?;
    Ok(Enforcing {
        daemon,
        _dir: dir,
        _pins: pins,
    })
}

/// A running daemon and what it needs (the daemon goes first).
struct Enforcing {
    daemon: Daemon,
    _dir: TempDir,
    _pins: PinDir,
}

impl std::ops::Deref for Enforcing {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

/// The sensor reaches 198.51.100.7:443, which its profile allows, and not
/// 198.51.100.8:443, through `iface`.
fn allowed_only(device: &Netns, daemon: &Daemon, iface: &str) -> anyhow::Result<()> {
    let t = Duration::from_millis(1500);
    ensure!(
        device.connect("198.51.100.7", 443, t),
        "the allowed destination through {iface}:\n{}",
        daemon.log()
    );
    ensure!(
        !device.connect("198.51.100.8", 443, t),
        "another destination through {iface}:\n{}",
        daemon.log()
    );
    Ok(())
}
