//! The IoT network on a VLAN sub-interface, as on a Debian router with
//! `eth1.20`: the device's frames arrive tagged on `eth1`, and iotfence is
//! attached to `eth1.20`. Run by the kernel matrix inside Debian's kernels
//! (the guest loads 8021q); this machine's own kernel has no 802.1Q.

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
    internet.ips(&[
        "addr add 198.51.100.7/24 dev eth0",
        "addr add 198.51.100.8/24 dev eth0",
        "link set eth0 up",
        "route add default via 198.51.100.1",
    ])?;
    router.sysctl("net.ipv4.ip_forward", "1")?;
    let _allowed = Server::start(&internet, "198.51.100.7", 443)?;
    let _other = Server::start(&internet, "198.51.100.8", 443)?;
    let t = Duration::from_millis(1500);
    ensure!(
        device.connect("198.51.100.8", 443, t),
        "the path works before iotfence"
    );

    let pins = PinDir::new();
    let dir = TempDir::new("vlan")?;
    std::fs::write(dir.join("policy.yaml"), POLICY)?;
    let cfg = dir.join("iotfence.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interfaces: [eth1.20]\nattach: {attach}\npolicy: policy.yaml\nresolvers: [192.0.2.1]\npin_dir: {}\nstate_dir: {}\nmetrics:\n  enabled: false\n",
            pins.path.display(),
            dir.join("state").display()
        ),
    )?;
    let daemon = Daemon::start(&router, &cfg)?;
    let log = daemon.log();
    ensure!(
        log.contains("interface=eth1.20"),
        "attached to the sub-interface:\n{log}"
    );
    ensure!(
        device.connect("198.51.100.7", 443, t),
        "the allowed destination through eth1.20:\n{}",
        daemon.log()
    );
    ensure!(
        !device.connect("198.51.100.8", 443, t),
        "another destination through eth1.20:\n{}",
        daemon.log()
    );
    Ok(())
}
