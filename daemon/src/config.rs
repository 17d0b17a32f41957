//! The daemon configuration file (`iotfence run --config FILE`): where to
//! attach, which policy to enforce, and datapath settings. Read, parsed and
//! validated completely before anything touches the kernel.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{from_yaml_error, Diagnostic, Diags};

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/iotfence";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigDoc {
    interfaces: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    attach: Option<Spanned<String>>,
    policy: Spanned<String>,
    #[serde(default)]
    resolvers: Vec<Spanned<String>>,
    #[serde(default)]
    dhcp_servers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pin_dir: Option<Spanned<String>>,
    #[serde(default)]
    flow_idle_seconds: FlowIdleDoc,
    #[serde(default)]
    events: EventsDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowIdleDoc {
    tcp: Option<Spanned<u64>>,
    udp: Option<Spanned<u64>>,
    icmp: Option<Spanned<u64>>,
    other: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsDoc {
    per_second: Option<Spanned<f64>>,
    burst: Option<Spanned<u32>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// XDP in the driver where supported, generic XDP otherwise.
    Xdp,
    XdpNative,
    XdpGeneric,
    /// TC ingress classifier (TCX link).
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
    pub attach: AttachMode,
    pub policy: PathBuf,
    pub resolvers: Vec<IpAddr>,
    pub dhcp_servers: Vec<IpAddr>,
    pub pin_dir: PathBuf,
    pub idle: FlowIdle,
    pub event_interval: Duration,
    pub event_burst: u32,
}

#[derive(Clone, Copy, Debug)]
pub struct FlowIdle {
    pub tcp: Duration,
    pub udp: Duration,
    pub icmp: Duration,
    pub other: Duration,
}

pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read configuration: {e}"),
            hint: None,
        }]
    })?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let doc: ConfigDoc =
        serde_saphyr::from_str(text).map_err(|e| vec![from_yaml_error(path, &e)])?;
    let mut d = Diags::new(path);
    let mut interfaces = Vec::new();
    if doc.interfaces.value.is_empty() {
        d.on(
            &doc.interfaces,
            "no interface to protect",
            Some("list the IoT-facing interfaces, e.g. [iot0]"),
        );
    }
    for i in &doc.interfaces.value {
        if i.value.is_empty()
            || i.value.len() > 15
            || i.value.contains('/')
            || i.value.contains(char::is_whitespace)
        {
            d.on(
                i,
                format!("`{}` is not a valid interface name", i.value),
                Some("names are 1 to 15 characters, without '/' or spaces"),
            );
        } else if interfaces.contains(&i.value) {
            d.on(i, format!("interface `{}` is listed twice", i.value), None);
        } else {
            interfaces.push(i.value.clone());
        }
    }
    let attach = match doc.attach.as_ref().map(|a| a.value.as_str()) {
        None | Some("xdp") => AttachMode::Xdp,
        Some("xdp-native") => AttachMode::XdpNative,
        Some("xdp-generic") => AttachMode::XdpGeneric,
        Some("tc") => AttachMode::Tc,
        Some(other) => {
            d.on(
                doc.attach.as_ref().unwrap(),
                format!("unknown attach mode `{other}`"),
                Some("use xdp, xdp-native, xdp-generic or tc"),
            );
            AttachMode::Xdp
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let policy = base.join(&doc.policy.value);
    if doc.policy.value.is_empty() {
        d.on(&doc.policy, "empty policy path", None);
    }
    let resolvers = addresses(&mut d, &doc.resolvers, "resolver");
    let dhcp_servers = match &doc.dhcp_servers {
        Some(list) => addresses(&mut d, list, "DHCP server"),
        None => resolvers.clone(),
    };
    let pin_dir = match &doc.pin_dir {
        Some(p) if !p.value.starts_with('/') => {
            d.on(
                p,
                "pin_dir must be an absolute path on a bpf filesystem",
                Some("e.g. /sys/fs/bpf/iotfence"),
            );
            PathBuf::from(DEFAULT_PIN_DIR)
        }
        Some(p) => PathBuf::from(&p.value),
        None => PathBuf::from(DEFAULT_PIN_DIR),
    };
    let mut secs = |v: &Option<Spanned<u64>>, default: u64, what: &str| match v {
        Some(s) if s.value == 0 || s.value > 7 * 86_400 => {
            d.on(
                s,
                format!("{what} idle timeout must be 1 to 604800 seconds"),
                None,
            );
            Duration::from_secs(default)
        }
        Some(s) => Duration::from_secs(s.value),
        None => Duration::from_secs(default),
    };
    let idle = FlowIdle {
        tcp: secs(&doc.flow_idle_seconds.tcp, 3600, "tcp"),
        udp: secs(&doc.flow_idle_seconds.udp, 120, "udp"),
        icmp: secs(&doc.flow_idle_seconds.icmp, 30, "icmp"),
        other: secs(&doc.flow_idle_seconds.other, 120, "other"),
    };
    let per_second = match &doc.events.per_second {
        Some(s) if !(s.value > 0.0 && s.value <= 100_000.0) => {
            d.on(
                s,
                "events.per_second must be above 0 and at most 100000",
                None,
            );
            5.0
        }
        Some(s) => s.value,
        None => 5.0,
    };
    let event_burst = match &doc.events.burst {
        Some(s) if s.value == 0 || s.value > 100_000 => {
            d.on(s, "events.burst must be 1 to 100000", None);
            20
        }
        Some(s) => s.value,
        None => 20,
    };
    if !d.list.is_empty() {
        return Err(d.list);
    }
    Ok(Config {
        file: path.to_path_buf(),
        interfaces,
        attach,
        policy,
        resolvers,
        dhcp_servers,
        pin_dir,
        idle,
        event_interval: Duration::from_secs_f64(1.0 / per_second),
        event_burst,
    })
}

fn addresses(d: &mut Diags<'_>, list: &[Spanned<String>], what: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for a in list {
        match a.value.parse::<IpAddr>() {
            Ok(ip) => out.push(ip),
            Err(_) => d.on(
                a,
                format!("`{}` is not an IP address ({what})", a.value),
                None,
            ),
        }
    }
    out
}
