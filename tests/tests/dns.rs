//! DNS learning end to end: Debian's dnsmasq as the router's resolver, real
//! devices in namespaces, iotfence holding answers until their addresses are
//! learned. Outcomes are read from the drop counters and the learned map.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, TcpStream, UdpSocket},
    time::Duration,
};

use hickory_proto::rr::RecordType;
use iotfence_common::{Reason, Verdict};
use iotfence_tests::{
    dns::{answer_bytes, mac_of, send_frame, Dnsmasq, Stub},
    lab::{Lab, Server, ROUTER_IOT_IP},
    packet::{self, Packet},
    trials::{self, DEVICE, POLICY},
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn connect(ns: &iotfence_tests::lab::Netns, addr: IpAddr) -> bool {
    ns.connect(&addr.to_string(), 443, Duration::from_secs(1))
}

/// Resolve-then-connect-at-once with fresh names, each for an address never
/// seen before: not one first packet may be dropped.
fn fresh_names_never_drop_the_first_packet(attach: &str, n: usize) {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts: Vec<(String, IpAddr)> = (0..n).map(trials::host).collect();
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab
        .write_config_with(attach, POLICY, trials::UNLIMITED_QUERIES)
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    let out = trials::run(lab.device("dev-1"), hosts).unwrap();
    let dropped = lab.dropped(1);
    let log = lab.daemon.as_ref().unwrap().log();
    let reasons: Vec<String> = iotfence_common::reason::REASONS
        .iter()
        .map(|r| (r, lab.counter(1, Verdict::Dropped, *r)))
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{}={n}", r.name()))
        .collect();
    assert!(
        out.failed.is_empty(),
        "{} of {n} trials failed: {:?}; drops: {reasons:?}\n{log}",
        out.failed.len(),
        &out.failed[..out.failed.len().min(5)]
    );
    assert_eq!(dropped, 0, "first packets dropped");
    assert!(lab.learned_count(1) >= n, "every address learned");
}

#[test]
fn xdp_fresh_names_never_drop_the_first_packet() {
    fresh_names_never_drop_the_first_packet("xdp", 1000);
}

#[test]
fn tc_fresh_names_never_drop_the_first_packet() {
    fresh_names_never_drop_the_first_packet("tc", 200);
}

/// Real answers of every shape, and forged ones: each has its outcome, and
/// none opens anything the policy does not name.
#[test]
fn answers_are_learned_only_from_the_chain_of_a_real_query() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let mut hosts: Vec<(String, IpAddr)> = vec![
        ("edge.cdn-other.example".into(), ip("203.0.113.131")),
        ("api.vendor.example".into(), ip("203.0.113.132")),
        ("v6.vendor.example".into(), ip("2001:db8:ff::1:6")),
        ("tcp.vendor.example".into(), ip("203.0.113.133")),
        ("shop.evil.example".into(), ip("203.0.113.134")),
    ];
    for i in 0..40u8 {
        hosts.push((
            "flood.vendor.example".into(),
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 160 + i)),
        ));
    }
    let cnames = [
        ("cdn.vendor.example", "edge.cdn-other.example"),
        ("alias.evil.example", "api.vendor.example"),
    ];
    // TTL 0 everywhere: learned entries live min_ttl + grace.
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &cnames, 0).unwrap();
    let cfg = lab
        .write_config_with("xdp", POLICY, "dns:\n  max_addresses_per_name: 8\n")
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    let dev = lab.device("dev-1");
    let resolve = |name: &'static str, qtype: RecordType, tcp: bool| {
        dev.run(move || {
            let mut stub = Stub::new(ROUTER_IOT_IP).unwrap();
            if tcp {
                stub.resolve_tcp(name, qtype)
            } else {
                stub.resolve(name, qtype)
            }
        })
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: no answer"))
    };
    let not_allowed = || lab.counter(1, Verdict::Dropped, Reason::NotAllowed);

    // A CNAME chain from an allowed name to another domain: learned.
    assert_eq!(
        resolve("cdn.vendor.example", RecordType::A, false),
        vec![ip("203.0.113.131")]
    );
    assert!(lab.learned(1, ip("203.0.113.131")).is_some());
    assert!(connect(dev, ip("203.0.113.131")));

    // A chain from a name the profile does not allow, through an allowed
    // one: the device gets its answer, nothing is learned.
    assert_eq!(
        resolve("alias.evil.example", RecordType::A, false),
        vec![ip("203.0.113.132")]
    );
    assert!(lab.learned(1, ip("203.0.113.132")).is_none());
    let before = not_allowed();
    assert!(!connect(dev, ip("203.0.113.132")));
    assert!(
        not_allowed() > before,
        "the refused connection is counted as a drop"
    );

    // Not in the profile at all.
    assert_eq!(
        resolve("shop.evil.example", RecordType::A, false),
        vec![ip("203.0.113.134")]
    );
    assert!(lab.learned(1, ip("203.0.113.134")).is_none());

    // AAAA, then DNS over TCP.
    assert_eq!(
        resolve("v6.vendor.example", RecordType::AAAA, false),
        vec![ip("2001:db8:ff::1:6")]
    );
    assert!(connect(dev, ip("2001:db8:ff::1:6")));
    assert_eq!(
        resolve("tcp.vendor.example", RecordType::A, true),
        vec![ip("203.0.113.133")]
    );
    assert!(lab.learned(1, ip("203.0.113.133")).is_some());
    assert!(connect(dev, ip("203.0.113.133")));

    // TTL 0 is clamped up to min_ttl (60 s) plus grace (60 s).
    let e = lab.learned(1, ip("203.0.113.131")).unwrap();
    let left = e.rules[0]
        .expires_ns
        .saturating_sub(iotfence::clock::mono_ns());
    assert!(
        left > 100_000_000_000 && left <= 120_000_000_000,
        "{left} ns left"
    );

    // Many addresses for one name: at most max_addresses_per_name learned.
    let flood = resolve("flood.vendor.example", RecordType::A, false);
    assert!(
        flood.len() > 8,
        "dnsmasq returned {} addresses",
        flood.len()
    );
    let learned = flood
        .iter()
        .filter(|a| lab.learned(1, **a).is_some())
        .count();
    assert_eq!(learned, 8);

    // Forged: an answer from a host that is not a configured resolver.
    let forged = ip("203.0.113.140");
    lab.internet
        .run(move || {
            let s = UdpSocket::bind("198.51.100.7:53").unwrap();
            let a = answer_bytes(
                7,
                "forged.vendor.example",
                "203.0.113.140".parse().unwrap(),
                300,
            );
            s.send_to(&a, "192.0.2.10:40000").unwrap();
        })
        .unwrap();
    // Forged: an answer from the resolver's address that no query asked for.
    let unsolicited = ip("203.0.113.141");
    let router_mac = mac_of(&lab.router, "iot0").unwrap();
    let dev_mac = iotfence::policy::compile::parse_mac(DEVICE.mac).unwrap();
    let a = answer_bytes(
        9,
        "unsolicited.vendor.example",
        "203.0.113.141".parse().unwrap(),
        300,
    );
    let frame = Packet::eth(router_mac, dev_mac)
        .ipv4(packet::v4(ROUTER_IOT_IP), packet::v4("192.0.2.10"))
        .udp(53, 40001)
        .data(&a)
        .build();
    send_frame(&lab.router, "iot0", frame).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for addr in [forged, unsolicited] {
        assert!(
            lab.learned(1, addr).is_none(),
            "{addr} learned from a forged answer"
        );
        let before = not_allowed();
        assert!(!connect(dev, addr));
        assert!(not_allowed() > before);
    }
}

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

/// A state file cannot grant more than an answer could: restored lifetimes
/// are cut to max_ttl + grace, and an absurd deadline (u64::MAX, which
/// overflowed the debug build) is cut too (issue 15, row 8).
/// The files that map devices to addresses and names are 0600 (the events
/// file also when it existed looser), the state directory the daemon
/// creates 0700 (issue 15, row 11: they were 0644 and 0755).
#[test]
fn state_and_event_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let state = lab.dir.join("state");
    assert!(!state.exists());
    std::fs::write(lab.events_file(), b"").unwrap();
    std::fs::set_permissions(lab.events_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = lab.write_config("xdp", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    assert!(lab.daemon.as_mut().unwrap().terminate().unwrap().success());
    lab.daemon = None;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "state directory");
    for f in ["learned.json", "device-ids.json"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&lab.events_file()), 0o600, "events file");
}

/// Device ids that cannot be trusted (an unreadable device-ids.json) must
/// not hand one device's unexplained kernel entries to the device that now
/// holds its id (issue 15, row 7: device B reached device A's learned
/// address after a restart).
#[test]
fn unexplained_entries_are_not_handed_to_a_new_holder_of_the_id() {
    use iotfence_tests::lab::DeviceSpec;
    const OTHER: DeviceSpec = DeviceSpec {
        name: "dev-2",
        mac: "02:00:5e:10:00:02",
        host: 11,
    };
    let other = "  - name: dev-2\n    mac: 02:00:5e:10:00:02\n    profile: vendor\n";
    let mut lab = Lab::build(&[DEVICE, OTHER], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts = vec![("keep.vendor.example".to_string(), ip("203.0.113.171"))];
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab
        .write_config("xdp", &format!("{POLICY}{other}"))
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    let answer = lab
        .device("dev-1")
        .run(|| {
            Stub::new(ROUTER_IOT_IP)
                .unwrap()
                .resolve("keep.vendor.example", RecordType::A)
        })
        .unwrap();
    assert_eq!(answer, Some(vec![ip("203.0.113.171")]));
    assert!(
        lab.learned(1, ip("203.0.113.171")).is_some(),
        "dev-1 (id 1) learned it"
    );
    // A crash before the credit was saved, and a damaged id table.
    lab.daemon.as_mut().unwrap().kill();
    lab.daemon = None;
    let state = lab.dir.join("state");
    let _ = std::fs::remove_file(state.join("learned.json"));
    std::fs::write(state.join("device-ids.json"), b"{\"by_name\": {\"dev-").unwrap();
    // dev-2 listed first now: fresh ids give it id 1.
    let reordered = POLICY.replace("devices:\n", &format!("devices:\n{other}"));
    let reordered = reordered.trim_end_matches(other).to_string();
    lab.write_config("xdp", &reordered).unwrap();
    lab.start_daemon(&cfg).unwrap();
    assert!(
        !connect(lab.device("dev-2"), ip("203.0.113.171")),
        "dev-2 reached dev-1's learned address"
    );
    let log = lab.daemon.as_ref().unwrap().log();
    assert!(log.contains("dropped_unexplained=1"), "{log}");
    assert!(state.join("device-ids.json.bad").exists());
}

/// A device flooding DNS-shaped frames must not change another device's DNS
/// outcome (issue 15, row 4: an unknown device's flood made another device
/// fail 7 of 8 lookups). The flood is UDP to the resolver's port 53 with a
/// wrong UDP checksum: the kernel copies what it judges a query (it reads
/// no checksums), the router's stack then drops it, so the resolver itself
/// is not what the flood exhausts.
#[test]
fn a_dns_flood_from_one_device_leaves_other_devices_learning() {
    use std::sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    };
    const FLOODER: iotfence_tests::lab::DeviceSpec = iotfence_tests::lab::DeviceSpec {
        name: "flooder",
        mac: "02:00:5e:10:00:09",
        host: 19,
    };
    let mut lab = Lab::build(&[DEVICE, FLOODER], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let n = 40;
    let hosts: Vec<(String, IpAddr)> = (0..n).map(trials::host).collect();
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab.write_config("xdp", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();

    let router_mac = mac_of(&lab.router, "iot0").unwrap();
    let flooder_mac = mac_of(lab.device("flooder"), "eth0").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        lab.device("flooder").spawn(move || {
            let ifname = std::ffi::CString::new("eth0").unwrap();
            let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
            let q = iotfence_tests::dns::query_bytes(7, "flood.vendor.example", RecordType::A);
            let frame = Packet::eth(flooder_mac, router_mac)
                .ipv4(packet::v4("192.0.2.19"), packet::v4(ROUTER_IOT_IP))
                .header_checksum()
                .udp(10_000, 53)
                .data(&q)
                .udp_checksum(0xdead) // wrong: the stack drops it
                .build();
            let started = std::time::Instant::now();
            let mut total: u64 = 0;
            // Bounded: the test stops it, else 60 s or 100 M frames.
            while !stop.load(Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(60)
                && total < 100_000_000
            {
                total += iotfence_tests::flood::send_burst(ifindex, &frame, 256);
            }
            sent.store(total, Ordering::Relaxed);
        })
    };
    // Let the flood build up before and during the victim's lookups.
    std::thread::sleep(Duration::from_secs(4));
    let out = trials::run(lab.device("dev-1"), hosts).unwrap();
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let frames = sent.load(Ordering::Relaxed);
    let over_budget = lab.global(iotfence_common::consts::GLOBAL_DNS_QUERY_BUDGET);
    let no_daemon = lab.global(iotfence_common::consts::GLOBAL_DNS_NO_DAEMON);
    eprintln!(
        "flood: {frames} frames; over budget {over_budget}; answers dropped for no daemon {no_daemon}; queries copied {}; unknown allowed {} dropped {}",
        lab.global(iotfence_common::consts::GLOBAL_DNS_QUERIES),
        lab.counter(0, Verdict::Allowed, Reason::Rule),
        lab.dropped(0)
    );
    assert!(
        frames > 100_000,
        "the flood was too weak to mean anything: {frames}"
    );
    assert!(
        out.failed.is_empty(),
        "{} of {n} lookups failed under the flood ({frames} frames, no_daemon {no_daemon}): {:?}",
        out.failed.len(),
        &out.failed[..out.failed.len().min(5)]
    );
    assert_eq!(
        no_daemon, 0,
        "held answers were dropped as if no daemon ran"
    );
    assert!(over_budget > 0, "the flooder's copies were not limited");
}
