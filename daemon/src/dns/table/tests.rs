//! Budgets, caps, expiry and per-name counts of the learned table.

use super::*;
use iotfence_common::consts::PROTO_TCP;

const LIMITS: Limits = Limits {
    max_addresses_per_name: 2,
    max_entries_per_device: 3,
    max_entries: 5,
};

fn credit(name: &str, port: u16, expires_ns: u64) -> Credit {
    Credit {
        name: name.into(),
        pattern: Pattern::parse("*.example.com").unwrap(),
        rules: vec![PortRule::new(PROTO_TCP, port, port)],
        expires_ns,
    }
}

fn ip(i: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, i])
}

#[test]
fn strangers_are_budgeted_per_mac_within_a_pool() {
    // Per device (and per stranger's MAC): 3; all strangers: 20 / 4.
    let limits = Limits {
        max_addresses_per_name: 100,
        max_entries_per_device: 3,
        max_entries: 20,
    };
    let mut t = Table::default();
    let learn = |t: &mut Table, mac: u8, i: u8| {
        t.credit_from(
            &limits,
            0,
            Some([2, 0, 0, 0, 0, mac]),
            ip(i),
            credit("a.example.com", 443, 10),
        )
    };
    for i in 0..3 {
        assert!(learn(&mut t, 1, i).is_ok());
    }
    assert_eq!(
        learn(&mut t, 1, 3),
        Err(Refusal::DeviceBudget),
        "its own budget"
    );
    assert!(
        learn(&mut t, 2, 3).is_ok(),
        "another stranger's is untouched"
    );
    assert!(learn(&mut t, 3, 4).is_ok());
    assert_eq!(
        learn(&mut t, 4, 5),
        Err(Refusal::DeviceBudget),
        "the pool of 5"
    );
    // Known devices are not in the pool.
    assert!(t
        .credit(&limits, 1, ip(6), credit("a.example.com", 443, 10))
        .is_ok());
    // Expiry gives budgets back.
    t.expire(100);
    assert!(t.is_empty());
    assert!(learn(&mut t, 4, 5).is_ok());
}

#[test]
fn caps_refuse_without_evicting() {
    let mut t = Table::default();
    assert!(t
        .credit(&LIMITS, 1, ip(1), credit("a.example.com", 443, 100))
        .is_ok());
    assert!(t
        .credit(&LIMITS, 1, ip(2), credit("a.example.com", 443, 100))
        .is_ok());
    assert_eq!(
        t.credit(&LIMITS, 1, ip(3), credit("a.example.com", 443, 100)),
        Err(Refusal::NameCap)
    );
    assert!(t
        .credit(&LIMITS, 1, ip(3), credit("b.example.com", 443, 100))
        .is_ok());
    assert_eq!(
        t.credit(&LIMITS, 1, ip(4), credit("c.example.com", 443, 100)),
        Err(Refusal::DeviceBudget)
    );
    assert!(t
        .credit(&LIMITS, 2, ip(4), credit("c.example.com", 443, 100))
        .is_ok());
    assert!(t
        .credit(&LIMITS, 2, ip(5), credit("d.example.com", 443, 100))
        .is_ok());
    assert_eq!(
        t.credit(&LIMITS, 3, ip(6), credit("e.example.com", 443, 100)),
        Err(Refusal::MapFull)
    );
    // Refreshing what exists is never refused by a cap.
    assert!(t
        .credit(&LIMITS, 1, ip(1), credit("a.example.com", 443, 500))
        .is_ok());
    assert_eq!(t.len(), 5);
}

#[test]
fn per_rule_expiry_and_gc() {
    let mut t = Table::default();
    t.credit(&LIMITS, 1, ip(1), credit("a.example.com", 443, 100))
        .unwrap();
    let w = t
        .credit(&LIMITS, 1, ip(1), credit("b.example.com", 8883, 300))
        .unwrap()
        .unwrap();
    let Write::Put(_, v) = w else { panic!() };
    assert_eq!(v.count, 2);
    assert_eq!(
        t.expire(200),
        vec![Write::Put(
            key(1, ip(1)),
            value(&[credit("b.example.com", 8883, 300)]).unwrap()
        )]
    );
    assert_eq!(t.expire(400), vec![Write::Delete(key(1, ip(1)))]);
    assert!(t.is_empty());
    assert!(t
        .credit(&LIMITS, 1, ip(1), credit("a.example.com", 443, 900))
        .is_ok());
}

/// The per-name count kept alongside `entries` agrees with counting
/// `entries` through a long mix of learning, expiry and reconciles.
#[test]
fn per_name_counts_follow_every_change() {
    let limits = Limits {
        max_addresses_per_name: 6,
        max_entries_per_device: 40,
        max_entries: 100,
    };
    let names = [
        "a.example.com",
        "b.example.com",
        "c.example.com",
        "d.example.org",
    ];
    let com = DomainRule {
        pattern: Pattern::parse("*.example.com").unwrap(),
        rules: vec![PortRule::new(PROTO_TCP, 443, 443)],
    };
    let mut t = Table::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for step in 0..5_000u64 {
        match next(20) {
            0 => {
                t.expire(step * 10);
            }
            1 => {
                // Device 3 loses its profile; the others keep *.example.com.
                let rules = [com.clone()];
                t.reconcile(|d| (d != 3).then_some(&rules[..]));
            }
            _ => {
                let device = next(4) as u32;
                let name = names[next(4) as usize];
                let pattern = Pattern::parse(if name.ends_with(".org") {
                    "*.example.org"
                } else {
                    "*.example.com"
                })
                .unwrap();
                let c = Credit {
                    name: name.into(),
                    pattern,
                    rules: vec![PortRule::new(PROTO_TCP, 443, 443)],
                    expires_ns: step * 10 + next(400),
                };
                let _ = t.credit(&limits, device, ip(next(12) as u8), c);
            }
        }
        for device in 0..4 {
            for name in names {
                let counted = t
                    .entries
                    .iter()
                    .filter(|((d, _), cs)| *d == device && cs.iter().any(|c| c.name == name))
                    .count();
                assert_eq!(t.addresses_of(device, name), counted, "step {step}");
                assert!(counted <= limits.max_addresses_per_name);
            }
        }
    }
    assert!(!t.per_name.is_empty(), "the mix left something learned");
}
