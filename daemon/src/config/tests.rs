//! Parsing the configuration: defaults, located errors and warnings.

use std::path::Path;

use super::{parse, Config};
use crate::diag::Diagnostic;

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

#[test]
fn trunk_vlans_are_validated_where_they_are() {
    let c = parse(
        Path::new("c.yaml"),
        "interfaces: [eth1, iot0]\nvlans:\n  eth1: [20, 21]\npolicy: p.yaml\n",
    )
    .unwrap();
    assert_eq!(c.vlans.get("eth1"), Some(&vec![20, 21]));
    assert_eq!(c.vlans.get("iot0"), None);
    let errors = |text: &str| -> Vec<String> {
        parse(Path::new("c.yaml"), text)
            .unwrap_err()
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
            .collect()
    };
    assert_eq!(
        errors("interfaces: [eth1]\nvlans:\n  eth2: [20]\npolicy: p.yaml\n"),
        ["3:9: vlans: `eth2` is not one of the interfaces"]
    );
    assert_eq!(
        errors("interfaces: [eth1]\nvlans:\n  eth1: [0, 20, 4095, 20]\npolicy: p.yaml\n"),
        [
            "3:10: `0` is not a VLAN ID",
            "3:17: `4095` is not a VLAN ID",
            "3:23: VLAN 20 is listed twice"
        ]
    );
    assert_eq!(
        errors("interfaces: [eth1]\nvlans:\n  eth1: []\npolicy: p.yaml\n"),
        ["3:9: vlans: no VLAN for `eth1`"]
    );
}

#[test]
fn dns_redirect_is_off_by_default_and_needs_a_resolver() {
    assert!(!parse_with("").unwrap().dns.redirect);
    assert!(parse_with("dns:\n  redirect: true\n").unwrap().dns.redirect);
    let e = parse(
        Path::new("c.yaml"),
        "interfaces: [iot0]\npolicy: p.yaml\ndns:\n  redirect: true\n",
    )
    .unwrap_err();
    let text = e[0].to_string();
    assert!(text.contains("c.yaml:4:13"), "{text}");
    assert!(text.contains("dns.redirect needs a resolver"), "{text}");
}

#[test]
fn max_devices_defaults_and_is_bounded_where_it_is() {
    assert_eq!(parse_with("").unwrap().max_devices, 2048);
    assert_eq!(
        parse_with("max_devices: 10001\n").unwrap().max_devices,
        10_001
    );
    for bad in ["15", "65537", "0"] {
        let e = parse_with(&format!("max_devices: {bad}\n")).unwrap_err();
        let text = e[0].to_string();
        assert!(text.contains("iotfence.yaml:4:14"), "{text}");
        assert!(text.contains("max_devices must be 16 to 65536"), "{text}");
    }
}
