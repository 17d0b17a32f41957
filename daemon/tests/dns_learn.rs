//! The answer-learning decision, table-driven: each answer shape and forgery
//! with the outcome it must have.

mod support;

use std::net::IpAddr;

use hickory_proto::op::ResponseCode as Rc;
use iotfence::dns::learn::{examine, Refusal, Route};
use support::*;

struct Case {
    name: &'static str,
    /// The query the device sent (id, name), if any.
    sent: Option<(u16, &'static str)>,
    answer: Vec<u8>,
    route: Route,
    expect: Result<&'static [&'static str], Refusal>,
    off_chain: u32,
}

fn case(
    name: &'static str,
    sent: Option<(u16, &'static str)>,
    answer: Vec<u8>,
    expect: Result<&'static [&'static str], Refusal>,
) -> Case {
    Case {
        name,
        sent,
        answer,
        route: route(),
        expect,
        off_chain: 0,
    }
}

fn cases() -> Vec<Case> {
    let ok = |id, q: &str, recs| answer(id, q, recs, Rc::NoError);
    let mut v = vec![
        case(
            "plain A",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![a("a.vendor.example", "198.51.100.7", 300)],
            ),
            Ok(&["198.51.100.7"]),
        ),
        case(
            "AAAA",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![a("a.vendor.example", "2001:db8:ff::7", 300)],
            ),
            Ok(&["2001:db8:ff::7"]),
        ),
        case(
            "case and trailing dot",
            Some((1, "A.Vendor.Example.")),
            ok(
                1,
                "a.vendor.example.",
                vec![a("a.VENDOR.example", "198.51.100.7", 300)],
            ),
            Ok(&["198.51.100.7"]),
        ),
        case(
            "no query sent",
            None,
            ok(
                1,
                "a.vendor.example",
                vec![a("a.vendor.example", "198.51.100.7", 300)],
            ),
            Err(Refusal::Unsolicited),
        ),
        case(
            "wrong transaction id",
            Some((1, "a.vendor.example")),
            ok(
                2,
                "a.vendor.example",
                vec![a("a.vendor.example", "198.51.100.7", 300)],
            ),
            Err(Refusal::Unsolicited),
        ),
        case(
            "other question, same id",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "b.vendor.example",
                vec![a("b.vendor.example", "198.51.100.7", 300)],
            ),
            Err(Refusal::QuestionMismatch),
        ),
        case(
            "question not in the profile",
            Some((1, "shop.evil.example")),
            ok(
                1,
                "shop.evil.example",
                vec![a("shop.evil.example", "203.0.113.9", 300)],
            ),
            Err(Refusal::NotAllowed),
        ),
        case(
            "apex is not below itself",
            Some((1, "vendor.example")),
            ok(
                1,
                "vendor.example",
                vec![a("vendor.example", "203.0.113.9", 300)],
            ),
            Err(Refusal::NotAllowed),
        ),
        case(
            "CNAME within the suffix",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![
                    cname("a.vendor.example", "b.vendor.example"),
                    a("b.vendor.example", "198.51.100.8", 60),
                ],
            ),
            Ok(&["198.51.100.8"]),
        ),
        case(
            "CNAME to another domain (CDN)",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![
                    cname("a.vendor.example", "edge.cdn.example"),
                    cname("edge.cdn.example", "x.cdn.example"),
                    a("x.cdn.example", "198.51.100.9", 60),
                ],
            ),
            Ok(&["198.51.100.9"]),
        ),
        case(
            "CNAME from a forbidden name into the suffix",
            Some((1, "alias.evil.example")),
            ok(
                1,
                "alias.evil.example",
                vec![
                    cname("alias.evil.example", "a.vendor.example"),
                    a("a.vendor.example", "198.51.100.7", 60),
                ],
            ),
            Err(Refusal::NotAllowed),
        ),
        case(
            "NXDOMAIN",
            Some((1, "a.vendor.example")),
            answer(1, "a.vendor.example", vec![], Rc::NXDomain),
            Err(Refusal::NoAddresses),
        ),
        case(
            "empty answer",
            Some((1, "a.vendor.example")),
            ok(1, "a.vendor.example", vec![]),
            Err(Refusal::NoAddresses),
        ),
        case(
            "CNAME loop",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![
                    cname("a.vendor.example", "b.vendor.example"),
                    cname("b.vendor.example", "a.vendor.example"),
                    a("c.vendor.example", "198.51.100.7", 60),
                ],
            ),
            Err(Refusal::NoAddresses),
        ),
        case(
            "TTL 0 is still an answer",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![a("a.vendor.example", "198.51.100.7", 0)],
            ),
            Ok(&["198.51.100.7"]),
        ),
        case(
            "huge TTL",
            Some((1, "a.vendor.example")),
            ok(
                1,
                "a.vendor.example",
                vec![a("a.vendor.example", "198.51.100.7", u32::MAX)],
            ),
            Ok(&["198.51.100.7"]),
        ),
    ];
    let mut off = case(
        "off-chain records ignored",
        Some((1, "a.vendor.example")),
        ok(
            1,
            "a.vendor.example",
            vec![
                a("a.vendor.example", "198.51.100.7", 60),
                a("evil.example", "203.0.113.66", 60),
                cname("other.example", "b.vendor.example"),
            ],
        ),
        Ok(&["198.51.100.7"]),
    );
    off.off_chain = 2;
    v.push(off);
    let mut wrong_resolver = case(
        "answer from another resolver",
        Some((1, "a.vendor.example")),
        ok(
            1,
            "a.vendor.example",
            vec![a("a.vendor.example", "198.51.100.7", 60)],
        ),
        Err(Refusal::Unsolicited),
    );
    wrong_resolver.route.resolver = "198.51.100.53".parse().unwrap();
    v.push(wrong_resolver);
    let mut wrong_port = case(
        "answer to another client port",
        Some((1, "a.vendor.example")),
        ok(
            1,
            "a.vendor.example",
            vec![a("a.vendor.example", "198.51.100.7", 60)],
        ),
        Err(Refusal::Unsolicited),
    );
    wrong_port.route.client_port = 40001;
    v.push(wrong_port);
    let full = ok(
        1,
        "a.vendor.example",
        vec![a("a.vendor.example", "198.51.100.7", 60)],
    );
    v.push(case(
        "truncated message",
        Some((1, "a.vendor.example")),
        full[..full.len() - 3].to_vec(),
        Err(Refusal::Malformed),
    ));
    // Header (id 1, response, 1 question) and a question name that is a
    // compression pointer to itself.
    let looped = vec![
        0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
    ];
    v.push(case(
        "compression pointer loop",
        Some((1, "a.vendor.example")),
        looped,
        Err(Refusal::Malformed),
    ));
    v.push(case(
        "a query, not an answer",
        Some((1, "a.vendor.example")),
        {
            let mut m = hickory_proto::op::Message::query();
            m.metadata.id = 1;
            m.add_query(hickory_proto::op::Query::query(
                hickory_proto::rr::Name::from_ascii("a.vendor.example").unwrap(),
                hickory_proto::rr::RecordType::A,
            ));
            m.to_vec().unwrap()
        },
        Err(Refusal::NotResponse),
    ));
    v
}

#[test]
fn every_answer_shape_has_its_outcome() {
    let rules = rules();
    for c in cases() {
        let mut pending = match c.sent {
            Some((id, name)) => pending_for(id, name),
            None => iotfence::dns::pending::Pending::new(10, 10, 1),
        };
        let got = examine(&c.answer, c.route, &rules, &mut pending, 1);
        match (&got, c.expect) {
            (Ok(lesson), Ok(want)) => {
                let want: Vec<IpAddr> = want.iter().map(|s| s.parse().unwrap()).collect();
                let have: Vec<IpAddr> = lesson.addrs.iter().map(|(a, _)| *a).collect();
                assert_eq!(have, want, "{}", c.name);
                assert_eq!(lesson.off_chain, c.off_chain, "{}: off-chain count", c.name);
                assert!(
                    lesson.patterns.iter().all(|(p, _)| p.matches(&lesson.name)),
                    "{}",
                    c.name
                );
            }
            (Err(r), Err(want)) => assert_eq!(*r, want, "{}", c.name),
            _ => panic!("{}: got {got:?}, want {:?}", c.name, c.expect),
        }
    }
}

#[test]
fn ttl_is_clamped_then_given_grace() {
    let cfg = iotfence::config::parse(
        std::path::Path::new("t.yaml"),
        "interfaces: [iot0]\npolicy: p.yaml\ndns:\n  min_ttl_seconds: 30\n  max_ttl_seconds: 3600\n  grace_seconds: 10\n",
    )
    .unwrap();
    let secs = |ttl| cfg.dns.lifetime(ttl).as_secs();
    assert_eq!(secs(0), 40);
    assert_eq!(secs(300), 310);
    assert_eq!(secs(u32::MAX), 3610);
}

#[test]
fn an_answer_is_learned_from_once() {
    let rules = rules();
    let mut pending = pending_for(1, "a.vendor.example");
    let msg = answer(
        1,
        "a.vendor.example",
        vec![a("a.vendor.example", "198.51.100.7", 60)],
        Rc::NoError,
    );
    assert!(examine(&msg, route(), &rules, &mut pending, 1).is_ok());
    assert_eq!(
        examine(&msg, route(), &rules, &mut pending, 1),
        Err(Refusal::Unsolicited),
        "a replayed answer"
    );
}
