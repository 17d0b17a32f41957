//! How long learned entries live: expiry, a daemon restart, a reload.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use hickory_proto::rr::RecordType;
use iotfence_tests::{
    dns::{Dnsmasq, Stub},
    lab::{Lab, Server, ROUTER_IOT_IP},
    trials::{DEVICE, POLICY},
};

use super::{connect, ip};

/// After TTL + grace a new connection is dropped (as `expired`), while one
/// opened before keeps working.
#[test]
fn expiry_stops_new_connections_not_established_ones() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts = vec![("short.vendor.example".to_string(), ip("203.0.113.150"))];
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 1).unwrap();
    let cfg = lab
        .write_config_with(
            "xdp",
            POLICY,
            "dns:\n  min_ttl_seconds: 1\n  max_ttl_seconds: 1\n  grace_seconds: 1\n",
        )
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    let dev = lab.device("dev-1");
    let mut conn = dev
        .run(|| {
            let mut stub = Stub::new(ROUTER_IOT_IP).unwrap();
            assert_eq!(
                stub.resolve("short.vendor.example", RecordType::A),
                Some(vec![ip("203.0.113.150")])
            );
            let mut s = TcpStream::connect_timeout(
                &"203.0.113.150:443".parse().unwrap(),
                Duration::from_secs(2),
            )
            .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut hello = [0u8; 5];
            s.read_exact(&mut hello).unwrap();
            s
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // Dropped as `expired` until the daemon collects the entry (within
    // half a second), as `not_allowed` after.
    let before = lab.dropped(1);
    assert!(
        !connect(dev, ip("203.0.113.150")),
        "new connection after expiry"
    );
    assert!(lab.dropped(1) > before);
    conn.write_all(b"still").unwrap();
    let mut echo = [0u8; 5];
    conn.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"still", "the established connection keeps working");
    // The daemon garbage-collects the expired entry.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(lab.learned(1, ip("203.0.113.150")).is_none());
}

/// Learned entries keep working while the daemon is down and are restored
/// from the state file when it returns; meanwhile new answers are not
/// delivered (fail closed), so nothing is allowed unlearned.
#[test]
fn learned_entries_survive_a_restart_and_answers_fail_closed_meanwhile() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts = vec![
        ("keep.vendor.example".to_string(), ip("203.0.113.151")),
        ("later.vendor.example".to_string(), ip("203.0.113.152")),
    ];
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab.write_config("xdp", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    let resolve = |lab: &Lab, name: &'static str| {
        lab.device("dev-1")
            .run(move || {
                Stub::new(ROUTER_IOT_IP)
                    .unwrap()
                    .resolve(name, RecordType::A)
            })
            .unwrap()
    };
    assert_eq!(
        resolve(&lab, "keep.vendor.example"),
        Some(vec![ip("203.0.113.151")])
    );
    let status = lab.daemon.as_mut().unwrap().terminate().unwrap();
    assert!(status.success());
    assert!(
        lab.dir.join("state/learned.json").exists(),
        "state saved on exit"
    );
    let dev = lab.device("dev-1");
    assert!(
        connect(dev, ip("203.0.113.151")),
        "learned entry works without the daemon"
    );
    assert_eq!(
        resolve(&lab, "later.vendor.example"),
        None,
        "answers are held back while nobody learns"
    );
    lab.start_daemon(&cfg).unwrap();
    let log = lab.daemon.as_ref().unwrap().log();
    assert!(log.contains("restored=1"), "{log}");
    let dev = lab.device("dev-1");
    assert!(connect(dev, ip("203.0.113.151")));
    assert_eq!(
        resolve(&lab, "later.vendor.example"),
        Some(vec![ip("203.0.113.152")])
    );
    assert!(connect(dev, ip("203.0.113.152")));
}

/// A reload keeps what devices learned for patterns that still exist, even
/// when devices are inserted before them; a pattern removed takes its
/// learned addresses with it.
#[test]
fn reload_keeps_learned_entries_of_remaining_patterns() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts = vec![
        ("a.vendor.example".to_string(), ip("203.0.113.171")),
        ("b.other.example".to_string(), ip("203.0.113.172")),
    ];
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let two_patterns = POLICY.replace(
        "      - to: [\"*.vendor.example\"]",
        "      - to: [\"*.other.example\"]\n        proto: tcp\n        ports: 443\n      - to: [\"*.vendor.example\"]",
    );
    let cfg = lab.write_config("xdp", &two_patterns).unwrap();
    lab.start_daemon(&cfg).unwrap();
    for name in ["a.vendor.example", "b.other.example"] {
        let got = lab
            .device("dev-1")
            .run(move || {
                Stub::new(ROUTER_IOT_IP)
                    .unwrap()
                    .resolve(name, RecordType::A)
            })
            .unwrap();
        assert!(got.is_some_and(|v| v.len() == 1), "{name}");
    }
    assert!(lab.learned(1, ip("203.0.113.171")).is_some());
    assert!(lab.learned(1, ip("203.0.113.172")).is_some());
    // A new device ahead of dev-1, and *.other.example gone.
    let edited = POLICY.replace(
        "devices:\n",
        "devices:\n  - name: newcomer\n    mac: 02:00:5e:10:00:09\n    profile: vendor\n",
    );
    std::fs::write(lab.dir.join("policy.yaml"), edited).unwrap();
    assert!(lab.daemon.as_ref().unwrap().reload().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        lab.learned(1, ip("203.0.113.171")).is_some(),
        "kept, under the same device id"
    );
    assert!(
        lab.learned(1, ip("203.0.113.172")).is_none(),
        "its pattern was removed"
    );
    let dev = lab.device("dev-1");
    assert!(connect(dev, ip("203.0.113.171")));
    assert!(!connect(dev, ip("203.0.113.172")));
}
