//! Which answers teach what: real answers of every shape, forged and
//! unsolicited ones.

use std::{
    net::{IpAddr, Ipv4Addr, UdpSocket},
    time::Duration,
};

use hickory_proto::rr::RecordType;
use iotfence_common::{Reason, Verdict};
use iotfence_tests::{
    dns::{answer_bytes, mac_of, send_frame, Dnsmasq, Stub},
    lab::{Lab, Server, ROUTER_IOT_IP},
    packet::{self, Packet},
    trials::{DEVICE, POLICY},
};

use super::{connect, ip};

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
    let left = e
        .get(0)
        .unwrap()
        .expires_ns
        .saturating_sub(iotfence::clock::mono_ns());
    // The kernel keeps deadlines in units of 2^28 ns, rounded up.
    let unit = 1 << iotfence_common::values::LEARNED_TICK_SHIFT;
    assert!(
        left > 100_000_000_000 && left <= 120_000_000_000 + unit,
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
    let dev_mac = DEVICE.mac.parse::<iotfence_common::Mac>().unwrap().0;
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
