//! The README's `iotfence learn` example is what the draft renderer writes
//! for a fixed observation, and that draft passes `iotfence check` (the
//! real binary) and compiles beside the shipped vendor library. After a
//! change of the renderer, `IOTFENCE_WRITE_DRAFT=FILE cargo test -p
//! iotfence --test readme_learn` writes what it renders now, for the README.

use std::{net::IpAddr, path::Path, process::Command};

use iotfence::learn::{
    draft::{render, Site},
    report::{DestSeen, NameSeen, Report},
};

fn t(s: &str) -> String {
    format!("2026-12-03T14:{s}Z")
}

fn name(n: &str, addrs: &[&str], answers: u64, first: &str, last: &str) -> NameSeen {
    NameSeen {
        name: n.into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        answers,
        first: t(first),
        last: t(last),
    }
}

fn dest(
    addr: &str,
    proto: u8,
    port: u16,
    flows: u64,
    first: &str,
    last: &str,
    names: &[&str],
) -> DestSeen {
    DestSeen {
        addr: addr.parse::<IpAddr>().unwrap(),
        proto,
        port,
        flows,
        first: t(first),
        last: t(last),
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

/// Ten minutes of a sensor: DHCP and DNS, three MQTT brokers of one
/// vendor domain, three CloudFront distributions (siblings under a public
/// suffix: never collapsed), an API, NTP by name, a hard-coded address,
/// and a name it resolved but never used.
fn observation() -> Report {
    let mut destinations = vec![
        dest("255.255.255.255", 17, 67, 1, "00:04", "00:04", &[]),
        dest("192.0.2.1", 17, 53, 212, "00:05", "09:58", &[]),
        dest(
            "203.0.113.21",
            6,
            8883,
            3,
            "00:06",
            "08:12",
            &["eu1.mqtt.vendor.example"],
        ),
        dest(
            "203.0.113.22",
            6,
            8883,
            2,
            "00:06",
            "07:40",
            &["eu2.mqtt.vendor.example"],
        ),
        dest(
            "203.0.113.23",
            6,
            8883,
            4,
            "00:07",
            "09:30",
            &["eu3.mqtt.vendor.example"],
        ),
        dest(
            "203.0.113.24",
            6,
            8884,
            1,
            "03:00",
            "03:00",
            &["eu3.mqtt.vendor.example"],
        ),
        dest(
            "203.0.113.30",
            6,
            443,
            40,
            "00:06",
            "09:59",
            &["api.vendor.example"],
        ),
        dest(
            "203.0.113.40",
            17,
            123,
            10,
            "00:05",
            "09:05",
            &["time.vendor.example"],
        ),
        dest(
            "198.51.100.31",
            6,
            443,
            5,
            "01:10",
            "09:10",
            &["d111.cloudfront.net"],
        ),
        dest(
            "198.51.100.32",
            6,
            443,
            5,
            "01:10",
            "09:10",
            &["d222.cloudfront.net"],
        ),
        dest(
            "198.51.100.33",
            6,
            443,
            5,
            "01:10",
            "09:10",
            &["d333.cloudfront.net"],
        ),
        dest("198.51.100.23", 6, 443, 6, "00:09", "09:09", &[]),
    ];
    destinations.sort_by_key(|d| (d.addr, d.proto, d.port));
    Report {
        device: "sensor-1".into(),
        profile: "sensor".into(),
        daemon: "router-1 (pin dir /sys/fs/bpf/iotfence)".into(),
        started: t("00:00"),
        requested_seconds: 600,
        observed_seconds: 600,
        state: "deadline".into(),
        names: vec![
            name(
                "api.vendor.example",
                &["203.0.113.30"],
                40,
                "00:06",
                "09:59",
            ),
            name(
                "d111.cloudfront.net",
                &["198.51.100.31"],
                5,
                "01:10",
                "09:10",
            ),
            name(
                "d222.cloudfront.net",
                &["198.51.100.32"],
                5,
                "01:10",
                "09:10",
            ),
            name(
                "d333.cloudfront.net",
                &["198.51.100.33"],
                5,
                "01:10",
                "09:10",
            ),
            name(
                "eu1.mqtt.vendor.example",
                &["203.0.113.21"],
                3,
                "00:06",
                "08:12",
            ),
            name(
                "eu2.mqtt.vendor.example",
                &["203.0.113.22"],
                2,
                "00:06",
                "07:40",
            ),
            name(
                "eu3.mqtt.vendor.example",
                &["203.0.113.23", "203.0.113.24"],
                5,
                "00:07",
                "09:30",
            ),
            name(
                "telemetry.vendor.example",
                &["203.0.113.50"],
                2,
                "00:05",
                "05:05",
            ),
            name(
                "time.vendor.example",
                &["203.0.113.40"],
                10,
                "00:05",
                "09:05",
            ),
        ],
        destinations,
        names_over_cap: 0,
        destinations_over_cap: 0,
    }
}

fn site() -> Site {
    Site {
        resolvers: vec!["192.0.2.1".parse().unwrap()],
        dhcp_servers: vec!["192.0.2.1".parse().unwrap()],
    }
}

/// The README's draft: the lines after `$ cat sensor-1.yaml` up to the
/// end of the code block.
fn readme_draft() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme
        .find("$ cat sensor-1.yaml\n")
        .expect("the README shows a learned draft")
        + "$ cat sensor-1.yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    readme[start..end].to_string()
}

#[test]
fn the_readmes_learn_example_is_what_the_renderer_writes() {
    let draft = render(&observation(), &site());
    if let Some(p) = std::env::var_os("IOTFENCE_WRITE_DRAFT") {
        std::fs::write(p, &draft).unwrap();
    }
    assert_eq!(
        readme_draft(),
        draft,
        "the README's draft is stale; the renderer writes:\n{draft}"
    );
    // What the example shows: siblings under a vendor domain collapse,
    // siblings under a public suffix (CloudFront's) do not.
    assert!(draft.contains(
        "- to: [\"*.mqtt.vendor.example\"]\n        proto: tcp\n        ports: [\"8883-8884\"]\n"
    ));
    for d in ["d111", "d222", "d333"] {
        assert!(
            draft.contains(&format!("- to: [\"{d}.cloudfront.net\"]")),
            "{draft}"
        );
    }
    assert!(!draft.contains("*.cloudfront.net"));
    assert!(draft.contains("POLICY SMELL: 198.51.100.23"));
    assert!(draft.contains("    use: [dhcp, dns]\n"));
}

#[test]
fn the_draft_passes_check_beside_the_shipped_vendor_library() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("iotfence-learn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let draft = dir.join("sensor-1.yaml");
    std::fs::write(&draft, render(&observation(), &site())).unwrap();
    // The draft alone, with the real checker.
    let out = Command::new(env!("CARGO_BIN_EXE_iotfence"))
        .arg("check")
        .arg(&draft)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "iotfence check {}: {out:?}",
        draft.display()
    );
    // And as a site uses it: in the shipped site example (every vendor
    // profile), given to a device of its own.
    let example = root
        .join("policies/site.example.yaml")
        .canonicalize()
        .unwrap();
    let site = format!(
        "include: [{}, sensor-1.yaml]\ndevices:\n  - name: sensor-1\n    mac: 02:00:5e:10:00:31\n    profile: sensor-1-learned\n",
        example.display()
    );
    std::fs::write(dir.join("site.yaml"), site).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iotfence"))
        .arg("check")
        .arg(dir.join("site.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains(": ok ("), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
