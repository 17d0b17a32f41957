//! Resolve, then connect at once: the first packet to a freshly learned
//! address is never dropped, on either attach mode.

use std::net::IpAddr;

use iotfence_common::Verdict;
use iotfence_tests::{
    dns::Dnsmasq,
    lab::{Lab, Server},
    trials::{self, DEVICE, POLICY},
};

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

/// An address the device was denied before (the denial cached in the
/// kernel) is allowed from the moment its name's answer arrives: learning
/// bumps the grants epoch before the held answer goes out.
#[test]
fn a_denied_address_is_allowed_as_soon_as_its_name_is_learned() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts: Vec<(String, IpAddr)> = (0..5).map(trials::host).collect();
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab
        .write_config_with("xdp", POLICY, trials::UNLIMITED_QUERIES)
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    for (_, addr) in &hosts {
        for _ in 0..2 {
            assert!(
                !crate::connect(lab.device("dev-1"), *addr),
                "{addr} before its name"
            );
        }
    }
    assert!(
        lab.global(iotfence_common::Global::DeniedCached) > 0,
        "the repeated SYNs were denied from the cache"
    );
    let out = trials::run(lab.device("dev-1"), hosts).unwrap();
    assert!(
        out.failed.is_empty(),
        "denied before, not allowed once learned: {:?}",
        out.failed
    );
}
