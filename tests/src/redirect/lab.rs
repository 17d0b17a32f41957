//! `dns.redirect` end to end: a device that only knows a hard-coded
//! resolver in the internet (which would answer differently) gets the
//! router's answers, over UDP and TCP, IPv4 and IPv6, from the address it
//! asked; the answers are learned, so it connects; DNS over TLS to that
//! resolver and HTTPS to its address stay dropped. No NIC offloads the
//! checksums on the path, so every receiving stack verifies them.

use std::{
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use crate::{
    dns::{Dnsmasq, Stub},
    lab::{Lab, Netns, Server, ROUTER_IOT_IP, ROUTER_IOT_IP6, SERVER_A6, SERVER_B},
    trials::{DEVICE, POLICY},
};
use hickory_proto::rr::RecordType;
use iotfence::kernel::counters::Counters;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The names the device resolves: the router's resolver answers these.
fn names() -> Vec<(String, IpAddr)> {
    vec![
        ("udp4.vendor.example".into(), ip("203.0.113.131")),
        ("tcp4.vendor.example".into(), ip("203.0.113.132")),
        ("udp6.vendor.example".into(), ip("2001:db8:ff::1:31")),
    ]
}

/// What the hard-coded resolver would answer: other addresses, so an
/// answer that came from it shows.
fn its_names() -> Vec<(String, IpAddr)> {
    names()
        .into_iter()
        .map(|(n, a)| {
            let other = if a.is_ipv4() {
                ip("203.0.113.200")
            } else {
                ip("2001:db8:ff::1:200")
            };
            (n, other)
        })
        .collect()
}

/// Checksums are filled in by software and verified on receipt at every
/// hop: no veth on the device's path offloads them either way.
fn no_checksum_offload(lab: &Lab) -> anyhow::Result<()> {
    let off = |ns: &Netns, dev: &str| ns.exec(&["ethtool", "-K", dev, "tx", "off", "rx", "off"]);
    off(lab.device("dev-1"), "eth0")?;
    off(&lab.switch, "port0")?;
    off(&lab.switch, "uplink")?;
    off(&lab.router, "iot0")
}

/// The check on attach mode `attach`; panics at the first disagreement.
pub fn run(attach: &str) -> anyhow::Result<()> {
    let mut lab = Lab::build(&[DEVICE], &[])?;
    no_checksum_offload(&lab)?;
    let _https = Server::start_any(&lab.internet, 443)?;
    let _dot = Server::start_any(&lab.internet, 853)?;
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &names(), &[], 300)?;
    let _hard_coded = Dnsmasq::at(&lab.internet, &lab.dir, (SERVER_B, SERVER_A6), &its_names())?;
    let cfg = lab.write_config_for(
        attach,
        POLICY,
        &[ROUTER_IOT_IP, ROUTER_IOT_IP6],
        "dns:\n  redirect: true\n",
    )?;
    lab.start_daemon(&cfg)?;
    let want = names();
    let got = lab.device("dev-1").run(move || {
        let connect = |a: IpAddr, port: u16| {
            TcpStream::connect_timeout(&SocketAddr::new(a, port), Duration::from_secs(1)).is_ok()
        };
        // The stub takes an answer only from the resolver it asked.
        let mut v4 = Stub::new(SERVER_B).unwrap();
        let mut v6 = Stub::new(SERVER_A6).unwrap();
        let udp4 = v4.resolve(&want[0].0, RecordType::A);
        let tcp4 = v4.resolve_tcp(&want[1].0, RecordType::A);
        let udp6 = v6.resolve(&want[2].0, RecordType::AAAA);
        let connected: Vec<bool> = want.iter().map(|(_, a)| connect(*a, 443)).collect();
        let dot = connect(ip(SERVER_B), 853);
        let https = connect(ip(SERVER_B), 443);
        ([udp4, tcp4, udp6], connected, dot, https)
    })?;
    let log = lab.daemon.as_ref().unwrap().log();
    let (answers, connected, dot, https) = got;
    for ((name, addr), answer) in names().iter().zip(&answers) {
        assert_eq!(
            answer.as_deref(),
            Some(&[*addr][..]),
            "{attach}: {name} through the redirect, from the router's resolver\n{log}"
        );
    }
    assert_eq!(
        connected,
        [true, true, true],
        "{attach}: the answers were learned"
    );
    assert!(
        !dot,
        "{attach}: DNS over TLS to the hard-coded resolver passed"
    );
    assert!(!https, "{attach}: HTTPS to the hard-coded resolver passed");
    assert!(lab.learned_count(1) >= 3, "{attach}: learned");
    let (queries, rewritten) = Counters::open(&lab.pins.path)?.redirected()?;
    assert!(
        queries >= 3 && rewritten >= 3,
        "{attach}: redirect counters {queries} queries, {rewritten} answers"
    );
    Ok(())
}
