//! The kernel's denial cache (`ebpf/src/denied.rs`) through
//! BPF_PROG_TEST_RUN: a cached denial never outlives a grant (a learned
//! address, a policy that allows it), and the per-port violation counts
//! stay exact while packets move between the cache and the counters.
//! The fixture table checks the rest: every denied row judged twice comes
//! to the same verdict, the second time from the cache
//! (`fixtures::run::judged_again`).

use iotfence_common::{
    consts::{DENIED_SLOTS, PROTO_TCP},
    Global, PortRule, Reason, Verdict, ViolationKey,
};
use iotfence_tests::{
    fixtures::{self, CAM_MAC},
    harness::{Action, Harness, Hook},
    packet::*,
};

/// cam-1's SYN to `dst`:`port`.
fn syn(dst: &str, port: u16) -> Vec<u8> {
    Packet::eth(CAM_MAC, ROUTER_MAC)
        .ipv4(v4("192.0.2.10"), v4(dst))
        .tcp(40100, port)
        .flags(TCP_SYN)
        .build()
}

fn hits(h: &Harness) -> u64 {
    h.counters.global(Global::DeniedCached).unwrap()
}

/// Denied twice (the second from the cache).
fn denied_twice(h: &mut Harness, packet: &[u8]) {
    let before = hits(h);
    for hook in [Hook::Xdp, Hook::Xdp] {
        assert_eq!(h.judge(hook, packet), Action::Drop);
    }
    assert_eq!(hits(h) - before, 1, "the second denial came from the cache");
    h.events();
}

#[test]
fn a_learned_address_voids_its_cached_denial() {
    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
    let p = syn("203.0.113.80", 8443);
    denied_twice(&mut h, &p);
    h.learn(
        "cam-1",
        v4("203.0.113.80").into(),
        PortRule::new(PROTO_TCP, 8443, 8443),
        60,
    );
    let dev = h.device_id("cam-1");
    let learned = h.count(dev, Verdict::Allowed, Reason::Learned);
    assert_eq!(h.judge(Hook::Xdp, &p), Action::Pass, "allowed once learned");
    assert_eq!(h.count(dev, Verdict::Allowed, Reason::Learned), learned + 1);
}

#[test]
fn a_policy_turn_voids_the_denials_cached_under_its_generation() {
    // Generations alternate (0, 1, 0): the third policy runs in the first
    // one's generation and allows what the first denied and cached.
    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
    let p = syn("203.0.113.81", 8443);
    denied_twice(&mut h, &p);
    let allowing = fixtures::POLICY.replace(
        "      - to: 203.0.113.9\n",
        "      - to: 203.0.113.81\n        proto: tcp\n        ports: 8443\n      - to: 203.0.113.9\n",
    );
    assert_ne!(allowing, fixtures::POLICY);
    h.apply_policy(fixtures::POLICY);
    assert_eq!(
        h.apply_policy(&allowing),
        0,
        "back in the first policy's generation"
    );
    assert_eq!(
        h.judge(Hook::Xdp, &p),
        Action::Pass,
        "the new policy allows it"
    );
}

#[test]
fn violation_counts_stay_exact_as_keys_take_slots_from_each_other() {
    // More destinations than slots: slots change hands (their counts move
    // to the violation map) while others still hold theirs.
    let mut h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
    let destinations = DENIED_SLOTS as usize + DENIED_SLOTS as usize / 2;
    // 100 addresses per port: port p's group is destinations 100p..100p+99.
    let dst = |i: usize| format!("203.0.113.{}", 100 + i % 100);
    let port = |i: usize| 2000 + (i / 100) as u16;
    let rounds = 3;
    for _ in 0..rounds {
        for i in 0..destinations {
            assert_eq!(h.judge(Hook::Xdp, &syn(&dst(i), port(i))), Action::Drop);
        }
        h.events();
    }
    let cached = hits(&h);
    assert!(
        cached > 0 && cached < (rounds - 1) * destinations as u64,
        "{cached} from the cache: some keys share a slot, some have one"
    );
    let dev = h.device_id("cam-1");
    let by_port = h.counters.violations().unwrap();
    for group in 0..destinations.div_ceil(100) {
        let k = ViolationKey {
            device: dev,
            port: port(group * 100),
            proto: PROTO_TCP,
            verdict: Verdict::Dropped as u8,
        };
        let members = 100.min(destinations - group * 100) as u64;
        assert_eq!(
            by_port.get(&k).map(|t| t.packets),
            Some(rounds * members),
            "{k:?}"
        );
    }
    let total: u64 = by_port
        .iter()
        .filter(|(k, _)| k.device == dev)
        .map(|(_, t)| t.packets)
        .sum();
    assert_eq!(total, rounds * destinations as u64);
    assert_eq!(
        h.count(dev, Verdict::Dropped, Reason::NotAllowed),
        rounds * destinations as u64
    );
}
