//! The daemon configuration file (`iotfence run --config FILE`): where to
//! attach, which policy to enforce, and datapath settings. Read, parsed and
//! validated completely before anything touches the kernel.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::diag::Diagnostic;

mod devices;
mod dns;
mod doc;
mod parse;
#[cfg(test)]
mod tests;

pub use dns::{DnsSettings, DEFAULT_REINJECT_MARK};
pub use parse::parse;

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/iotfence";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/iotfence";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// XDP in the driver where supported, generic XDP otherwise.
    Xdp,
    XdpNative,
    XdpGeneric,
    /// TC ingress classifier (a TCX link from 6.6, else a clsact filter).
    Tc,
}

impl AttachMode {
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Xdp => "xdp",
            AttachMode::XdpNative => "xdp-native",
            AttachMode::XdpGeneric => "xdp-generic",
            AttachMode::Tc => "tc",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub interfaces: Vec<String>,
    /// Trunk interfaces: the 802.1Q VLAN IDs judged there (with untagged
    /// frames); frames of other VLANs pass untouched.
    pub vlans: BTreeMap<String, Vec<u16>>,
    pub attach: AttachMode,
    pub policy: PathBuf,
    pub resolvers: Vec<IpAddr>,
    pub dhcp_servers: Vec<IpAddr>,
    pub pin_dir: PathBuf,
    pub idle: FlowIdle,
    pub event_interval: Duration,
    pub event_burst: u32,
    /// Where the daemon keeps what must survive restarts (learned names,
    /// device ids).
    pub state_dir: PathBuf,
    /// Device capacity: the device-indexed maps' size, device ids are
    /// 1 to `max_devices - 1` (0 is unknown devices).
    pub max_devices: u32,
    pub dns: DnsSettings,
    /// Where `/metrics`, `/healthz`, `/readyz` and `/status` are served;
    /// `None` when disabled.
    pub metrics_listen: Option<SocketAddr>,
    /// Violation events are also appended here (JSON lines).
    pub events_file: Option<PathBuf>,
    /// Located warnings about settings that work but weaken something.
    pub warnings: Vec<Diagnostic>,
}

/// Loopback only by default: counters name devices, which is site data.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9742";

#[derive(Clone, Copy, Debug)]
pub struct FlowIdle {
    pub tcp: Duration,
    pub udp: Duration,
    pub icmp: Duration,
    pub other: Duration,
}

pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::file_error(
            path,
            format!("cannot read configuration: {e}"),
            None,
        )]
    })?;
    parse(path, &text)
}

/// The configuration `iotfence check PATH` uses when given no file: the
/// defaults, with one placeholder resolver so `use: [dns]` can be checked.
pub fn standalone(policy: &Path) -> Config {
    let mut cfg = parse(
        Path::new("<standalone>"),
        "interfaces: [iot0]\npolicy: policy.yaml\nresolvers: [192.0.2.1]\n",
    )
    .expect("the built-in standalone configuration is valid");
    cfg.policy = policy.to_path_buf();
    // The placeholder resolver is no site's setting to warn about.
    cfg.warnings.clear();
    cfg
}
