//! The daemon configuration file (`iotfence run --config FILE`): where to
//! attach, which policy to enforce, and datapath settings. Read, parsed and
//! validated completely before anything touches the kernel.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use serde_saphyr::Spanned;

use iotfence_common::consts::{LEARNED_ENTRIES, MAX_LEARNED_ENTRIES};

use crate::diag::{from_yaml_error, Diagnostic, Diags};

pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/iotfence";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/iotfence";

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
    #[serde(default)]
    state_dir: Option<Spanned<String>>,
    #[serde(default)]
    dns: DnsDoc,
    #[serde(default)]
    metrics: MetricsDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsDoc {
    listen: Option<Spanned<String>>,
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsDoc {
    min_ttl_seconds: Option<Spanned<u64>>,
    max_ttl_seconds: Option<Spanned<u64>>,
    grace_seconds: Option<Spanned<u64>>,
    max_addresses_per_name: Option<Spanned<u64>>,
    max_entries_per_device: Option<Spanned<u64>>,
    max_entries: Option<Spanned<u64>>,
    max_pending_queries_per_device: Option<Spanned<u64>>,
    queries_per_second: Option<Spanned<u64>>,
    query_burst: Option<Spanned<u64>>,
    fail_open: Option<bool>,
    reinject_mark: Option<Spanned<u32>>,
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
    /// Also append every event (JSON lines) to this file.
    file: Option<Spanned<String>>,
}

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

/// DNS learning settings (`dns:` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// A learned address lives for its TTL clamped to [min_ttl, max_ttl],
    /// plus `grace` (devices connect a little after their answer expires).
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub grace: Duration,
    pub max_addresses_per_name: usize,
    pub max_entries_per_device: usize,
    pub max_entries: usize,
    pub max_pending_per_device: usize,
    /// Each device's DNS query budget in the kernel (unknown devices: each
    /// source MAC): a sustained rate and a burst, in queries.
    pub queries_per_second: u64,
    pub query_burst: u64,
    /// Deliver answers unlearned while the daemon is down (default: drop).
    pub fail_open: bool,
    pub reinject_mark: u32,
}

impl DnsSettings {
    /// How long an address with `ttl` stays allowed.
    pub fn lifetime(&self, ttl: u32) -> Duration {
        Duration::from_secs(ttl as u64).clamp(self.min_ttl, self.max_ttl) + self.grace
    }
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
    let state_dir = match &doc.state_dir {
        Some(p) if !p.value.starts_with('/') => {
            d.on(
                p,
                "state_dir must be an absolute path",
                Some("e.g. /var/lib/iotfence"),
            );
            PathBuf::from(DEFAULT_STATE_DIR)
        }
        Some(p) => PathBuf::from(&p.value),
        None => PathBuf::from(DEFAULT_STATE_DIR),
    };
    let dns = dns_settings(&mut d, &doc.dns);
    let metrics_listen = match (&doc.metrics.listen, doc.metrics.enabled) {
        (_, Some(false)) => None,
        (None, _) => Some(DEFAULT_METRICS_LISTEN.parse().expect("a valid default")),
        (Some(s), _) => match s.value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                d.on(
                    s,
                    format!("`{}` is not an address:port to listen on", s.value),
                    Some("e.g. 127.0.0.1:9742, or [::]:9742 for every address"),
                );
                None
            }
        },
    };
    let events_file = doc.events.file.as_ref().map(|f| base.join(&f.value));
    warn_exposure(&mut d, &doc, &resolvers, metrics_listen);
    if d.has_errors() {
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
        state_dir,
        dns,
        metrics_listen,
        events_file,
        warnings: d.list,
    })
}

/// Settings that work but give something away: a resolver off the router
/// (its answers can be forged, see `kernel/router_addrs.rs`), and metrics served
/// beyond loopback (`/status` lists every device's learned names).
fn warn_exposure(
    d: &mut Diags<'_>,
    doc: &ConfigDoc,
    resolvers: &[IpAddr],
    metrics_listen: Option<SocketAddr>,
) {
    let remote = crate::kernel::router_addrs::remote(resolvers);
    for s in &doc.resolvers {
        if s.value.parse().is_ok_and(|ip| remote.contains(&ip)) {
            d.warn_at(
                s.referenced,
                format!("resolver {} is not an address of this host: answers forged with its address cannot be told from its own (the device chooses the id and port they are matched on)", s.value),
                Some("run the resolver on the router (dnsmasq, unbound) and list the router's address; else make sure nothing on the path can send packets with the resolver's address (README, DNS learning)"),
            );
        }
    }
    if let (Some(addr), Some(s)) = (metrics_listen, &doc.metrics.listen) {
        if !addr.ip().is_loopback() {
            d.warn_at(
                s.referenced,
                format!("metrics listen on {addr}, not loopback: /metrics names every device and /status lists the names each one resolved"),
                Some("keep 127.0.0.1:9742 and scrape through an SSH tunnel or a reverse proxy, or firewall the port to the Prometheus host"),
            );
        }
    }
}

fn dns_settings(d: &mut Diags<'_>, doc: &DnsDoc) -> DnsSettings {
    let mut num = |v: &Option<Spanned<u64>>, default: u64, lo: u64, hi: u64, what: &str| match v {
        Some(s) if s.value < lo || s.value > hi => {
            d.on(s, format!("dns.{what} must be {lo} to {hi}"), None);
            default
        }
        Some(s) => s.value,
        None => default,
    };
    let min_ttl = num(&doc.min_ttl_seconds, 60, 0, 86_400, "min_ttl_seconds");
    let max_ttl = num(
        &doc.max_ttl_seconds,
        86_400,
        1,
        7 * 86_400,
        "max_ttl_seconds",
    );
    let grace = num(&doc.grace_seconds, 60, 0, 86_400, "grace_seconds");
    let per_name = num(
        &doc.max_addresses_per_name,
        64,
        1,
        65_536,
        "max_addresses_per_name",
    );
    let per_device = num(
        &doc.max_entries_per_device,
        4096,
        1,
        MAX_LEARNED_ENTRIES as u64,
        "max_entries_per_device",
    );
    let total = num(
        &doc.max_entries,
        LEARNED_ENTRIES as u64,
        1,
        MAX_LEARNED_ENTRIES as u64,
        "max_entries",
    );
    let pending = num(
        &doc.max_pending_queries_per_device,
        256,
        1,
        65_536,
        "max_pending_queries_per_device",
    );
    let queries_per_second = num(
        &doc.queries_per_second,
        20,
        1,
        100_000,
        "queries_per_second",
    );
    let query_burst = num(&doc.query_burst, 100, 1, 100_000, "query_burst");
    if min_ttl > max_ttl {
        if let Some(s) = &doc.min_ttl_seconds {
            d.on(s, "dns.min_ttl_seconds is above dns.max_ttl_seconds", None);
        }
    }
    let reinject_mark = match &doc.reinject_mark {
        Some(s) if s.value == 0 => {
            d.on(
                s,
                "dns.reinject_mark must not be 0",
                Some("pick a mark no other tool on the router uses"),
            );
            DEFAULT_REINJECT_MARK
        }
        Some(s) => s.value,
        None => DEFAULT_REINJECT_MARK,
    };
    DnsSettings {
        min_ttl: Duration::from_secs(min_ttl),
        max_ttl: Duration::from_secs(max_ttl.max(min_ttl)),
        grace: Duration::from_secs(grace),
        max_addresses_per_name: per_name as usize,
        max_entries_per_device: per_device as usize,
        max_entries: total as usize,
        max_pending_per_device: pending as usize,
        queries_per_second,
        query_burst,
        fail_open: doc.fail_open.unwrap_or(false),
        reinject_mark,
    }
}

/// skb mark of re-injected DNS answers ("iotf" in ASCII, minus one bit so
/// it stays positive).
pub const DEFAULT_REINJECT_MARK: u32 = 0x696f_7466;

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

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "interfaces: [iot0]\npolicy: p.yaml\nresolvers: [192.0.2.1]\n";

    fn parse_with(extra: &str) -> Result<Config, Vec<Diagnostic>> {
        parse(
            Path::new("/etc/iotfence/iotfence.yaml"),
            &format!("{BASE}{extra}"),
        )
    }

    #[test]
    fn metrics_listen_defaults_to_loopback_and_can_be_off() {
        let c = parse_with("").unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9742".parse().unwrap()));
        let c = parse_with("metrics: { listen: \"[::]:9100\" }").unwrap();
        assert_eq!(c.metrics_listen, Some("[::]:9100".parse().unwrap()));
        let c = parse_with("metrics: { enabled: false }").unwrap();
        assert_eq!(c.metrics_listen, None);
    }

    fn warnings(text: &str) -> Vec<String> {
        parse(Path::new("c.yaml"), text)
            .unwrap()
            .warnings
            .iter()
            .map(|w| format!("{}:{}: {}", w.line, w.column, w.message))
            .collect()
    }

    #[test]
    fn exposing_settings_are_warned_about_where_they_are() {
        // 127.0.0.1 is an address of every host (lo); 192.0.2.1 of none
        // that runs the unit tests (a documentation address).
        let local = "interfaces: [iot0]\npolicy: p.yaml\nresolvers: [127.0.0.1]\n";
        assert_eq!(warnings(local), Vec::<String>::new());
        let w = warnings("interfaces: [iot0]\npolicy: p.yaml\nresolvers: [127.0.0.1, 192.0.2.1]\n");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("3:24: resolver 192.0.2.1 is not an address of this host"),
            "{w:?}"
        );
        let w = warnings(&format!("{local}metrics:\n  listen: 0.0.0.0:9742\n"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("5:11: metrics listen on 0.0.0.0:9742, not loopback"),
            "{w:?}"
        );
        assert!(warnings(&format!("{local}metrics:\n  listen: \"[::1]:9742\"\n")).is_empty());
    }

    #[test]
    fn bad_metrics_address_is_located() {
        let e = parse_with("metrics:\n  listen: localhost\n").unwrap_err();
        let text = e[0].to_string();
        assert!(text.contains("iotfence.yaml:5:11"), "{text}");
        assert!(
            text.contains("`localhost` is not an address:port"),
            "{text}"
        );
    }

    #[test]
    fn events_file_is_relative_to_the_configuration() {
        let c = parse_with("events: { file: events.jsonl }").unwrap();
        assert_eq!(
            c.events_file.as_deref(),
            Some(Path::new("/etc/iotfence/events.jsonl"))
        );
    }
}
