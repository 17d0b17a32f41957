//! From the YAML document to a validated `Config`: every bad value is a
//! located error, every weakening setting a located warning.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use serde_saphyr::Spanned;

use super::{
    devices::max_devices, dns::dns_settings, doc::ConfigDoc, AttachMode, Config, FlowIdle,
    DEFAULT_METRICS_LISTEN, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR,
};
use crate::diag::{from_yaml_error, Diagnostic, Diags};

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
    let vlans = vlans(&mut d, &doc, &interfaces);
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
    let max_devices = max_devices(&mut d, &doc.max_devices);
    let dns = dns_settings(&mut d, &doc.dns);
    if let Some(r) = doc.dns.redirect.as_ref().filter(|r| r.value) {
        if resolvers.is_empty() {
            d.on(
                r,
                "dns.redirect needs a resolver to send the queries to, and `resolvers` lists none",
                Some("list the router's resolver, e.g. resolvers: [192.0.2.1]"),
            );
        }
    }
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
        vlans,
        attach,
        policy,
        resolvers,
        dhcp_servers,
        pin_dir,
        idle,
        event_interval: Duration::from_secs_f64(1.0 / per_second),
        event_burst,
        state_dir,
        max_devices,
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
    let remote = crate::host::remote(resolvers);
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

/// `vlans:`: per trunk interface (one of `interfaces`), the VLAN IDs to
/// judge, 1 to 4094, each once.
fn vlans(d: &mut Diags<'_>, doc: &ConfigDoc, interfaces: &[String]) -> BTreeMap<String, Vec<u16>> {
    let mut out = BTreeMap::new();
    for (iface, list) in &doc.vlans {
        if !interfaces.contains(iface) {
            d.on(
                list,
                format!("vlans: `{iface}` is not one of the interfaces"),
                Some("list the trunk under interfaces too, e.g. interfaces: [eth1]"),
            );
            continue;
        }
        if list.value.is_empty() {
            d.on(
                list,
                format!("vlans: no VLAN for `{iface}`"),
                Some("name the IoT VLANs, e.g. [20]; without a vlans entry every frame is judged"),
            );
            continue;
        }
        let mut ids: Vec<u16> = Vec::new();
        for v in &list.value {
            match u16::try_from(v.value) {
                Ok(id @ 1..=4094) if !ids.contains(&id) => ids.push(id),
                Ok(id @ 1..=4094) => d.on(v, format!("VLAN {id} is listed twice"), None),
                _ => d.on(
                    v,
                    format!("`{}` is not a VLAN ID", v.value),
                    Some("802.1Q VLAN IDs are 1 to 4094"),
                ),
            }
        }
        out.insert(iface.clone(), ids);
    }
    out
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
