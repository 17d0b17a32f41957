//! One small site with traffic of every kind the metrics, events and
//! dashboards show: a device in enforce mode that resolves and reaches its
//! allowed name, resolves a name it may not use and tries it, and tries an
//! address it never resolved; a device in audit mode that goes off-profile.

use std::{net::IpAddr, time::Duration};

use hickory_proto::rr::RecordType;

use crate::{
    dns::{Dnsmasq, Stub},
    lab::{DeviceSpec, Lab, Server, ROUTER_IOT_IP},
};

pub const SENSOR: DeviceSpec = DeviceSpec {
    name: "sensor-1",
    mac: "02:00:5e:10:00:01",
    host: 10,
};
pub const CAMERA: DeviceSpec = DeviceSpec {
    name: "camera-1",
    mac: "02:00:5e:10:00:02",
    host: 11,
};

pub const ALLOWED_NAME: &str = "api.vendor.example";
pub const ALLOWED_ADDR: &str = "203.0.113.130";
pub const EVIL_NAME: &str = "evil.example";
pub const EVIL_ADDR: &str = "203.0.113.140";
/// Never named by DNS.
pub const RAW_ADDR: &str = "203.0.113.150";
/// The port the sensor tries on RAW_ADDR (and nothing allows).
pub const RAW_PORT: u16 = 8883;

pub const POLICY: &str = "
profiles:
  sensor:
    description: A sensor that talks to its vendor's API
    use: [dhcp, dns]
    egress:
      - to: api.vendor.example
        proto: tcp
        ports: 443
  camera:
    mode: audit
    use: [dhcp, dns]
    egress:
      - to: 198.51.100.0/24
        proto: tcp
        ports: 443
devices:
  - name: sensor-1
    mac: 02:00:5e:10:00:01
    profile: sensor
  - name: camera-1
    mac: 02:00:5e:10:00:02
    profile: camera
";

/// What the traffic did, as seen by the devices.
#[derive(Debug)]
pub struct Outcome {
    pub allowed_connected: bool,
    pub evil_connected: bool,
    pub raw_connected: bool,
    pub audited_connected: bool,
}

pub struct Site {
    pub lab: Lab,
    pub dns: Dnsmasq,
    pub servers: Vec<Server>,
}

/// Builds the lab, starts dnsmasq and the daemon (extra configuration
/// appended to the lab's), and returns before any traffic.
pub fn start(attach: &str, extra_config: &str) -> anyhow::Result<Site> {
    let mut lab = Lab::build(&[SENSOR, CAMERA], &[])?;
    let servers = vec![
        Server::start_any(&lab.internet, 443)?,
        Server::start_any(&lab.internet, RAW_PORT)?,
    ];
    let hosts = vec![
        (ALLOWED_NAME.to_string(), ALLOWED_ADDR.parse()?),
        (EVIL_NAME.to_string(), EVIL_ADDR.parse()?),
    ];
    let dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300)?;
    let cfg = lab.write_config_with(attach, POLICY, extra_config)?;
    lab.start_daemon(&cfg)?;
    Ok(Site { lab, dns, servers })
}

fn resolve(name: &'static str) -> Option<Vec<IpAddr>> {
    Stub::new(ROUTER_IOT_IP).ok()?.resolve(name, RecordType::A)
}

/// One round of the traffic.
pub fn traffic(site: &Site) -> anyhow::Result<Outcome> {
    let t = Duration::from_secs(1);
    let sensor = site.lab.device(SENSOR.name);
    let allowed = sensor.run(|| resolve(ALLOWED_NAME))?;
    anyhow::ensure!(
        allowed.as_deref() == Some(&[ALLOWED_ADDR.parse()?][..]),
        "{ALLOWED_NAME} resolved to {allowed:?}"
    );
    let allowed_connected = sensor.connect(ALLOWED_ADDR, 443, t);
    let evil = sensor.run(|| resolve(EVIL_NAME))?;
    anyhow::ensure!(
        evil.as_deref() == Some(&[EVIL_ADDR.parse()?][..]),
        "{EVIL_NAME} resolved to {evil:?}"
    );
    let evil_connected = sensor.connect(EVIL_ADDR, 443, t);
    let raw_connected = sensor.connect(RAW_ADDR, RAW_PORT, t);
    let audited_connected = site.lab.device(CAMERA.name).connect(RAW_ADDR, 443, t);
    Ok(Outcome {
        allowed_connected,
        evil_connected,
        raw_connected,
        audited_connected,
    })
}
