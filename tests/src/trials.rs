//! Resolve-then-connect-at-once trials, shared by the DNS tests and the DNS
//! benchmark: a device asks for a fresh name (an address never allowed
//! before) and connects to the answer the moment it arrives.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use hickory_proto::rr::RecordType;

use crate::{
    dns::Stub,
    lab::{DeviceSpec, Netns, ROUTER_IOT_IP},
};

pub const DEVICE: DeviceSpec = DeviceSpec {
    name: "dev-1",
    mac: "02:00:5e:10:00:01",
    host: 10,
};

/// The device may reach the vendor's domains on TCP 443, learned from DNS.
pub const POLICY: &str = "
profiles:
  vendor:
    use: [dhcp, dns]
    egress:
      - to: [\"*.vendor.example\"]
        proto: tcp
        ports: 443
devices:
  - name: dev-1
    mac: 02:00:5e:10:00:01
    profile: vendor
";

/// Configuration for a device that resolves names back to back, hundreds a
/// second, far beyond the per-device query budget a real device needs
/// (`dns.queries_per_second`, default 20): the trials measure learning,
/// not the budget.
pub const UNLIMITED_QUERIES: &str = "dns:\n  queries_per_second: 100000\n  query_burst: 100000\n";

/// Trial `i`'s name and address: the first 100 in IPv4 (the lab's internet
/// namespace answers 203.0.113.128/25), the rest in IPv6
/// (2001:db8:ff::1:0/112, so at most 65,536 trials).
pub fn host(i: usize) -> (String, IpAddr) {
    assert!(i < 65_536, "the lab answers 2001:db8:ff::1:0/112");
    let addr = if i < 100 {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 129 + i as u8))
    } else {
        format!("2001:db8:ff::1:{:x}", i).parse().unwrap()
    };
    (format!("n{i}.fresh.vendor.example"), addr)
}

#[derive(Default)]
pub struct Outcome {
    /// Query sent to answer received, µs.
    pub rtt_us: Vec<f64>,
    /// Answer received to connection established, µs.
    pub connect_us: Vec<f64>,
    pub failed: Vec<String>,
}

/// Trials stop after this many failures: each can cost seconds.
const MAX_FAILURES: usize = 20;

/// Runs the trials for `hosts` from `device` against the router's resolver,
/// one after another, until [`MAX_FAILURES`]. A dropped SYN is retransmitted
/// after 1 s, within the connect timeout: the filter's drop counter, not a
/// failure here, is what shows a dropped first packet.
pub fn run(device: &Netns, hosts: Vec<(String, IpAddr)>) -> anyhow::Result<Outcome> {
    device.run(move || {
        let mut stub = Stub::new(ROUTER_IOT_IP).expect("stub resolver");
        let mut out = Outcome::default();
        for (name, want) in &hosts {
            if out.failed.len() >= MAX_FAILURES {
                out.failed
                    .push(format!("stopped after {MAX_FAILURES} failures"));
                break;
            }
            let qtype = if want.is_ipv4() {
                RecordType::A
            } else {
                RecordType::AAAA
            };
            let t0 = Instant::now();
            let got = stub.resolve(name, qtype);
            let t1 = Instant::now();
            if got.as_deref() != Some(&[*want][..]) {
                out.failed.push(format!("{name}: answer {got:?}"));
                continue;
            }
            out.rtt_us.push((t1 - t0).as_secs_f64() * 1e6);
            // At once: no pause between the answer and the SYN.
            match TcpStream::connect_timeout(&SocketAddr::new(*want, 443), Duration::from_secs(3)) {
                Ok(_) => out.connect_us.push(t1.elapsed().as_secs_f64() * 1e6),
                Err(e) => out.failed.push(format!("{name}: connect to {want}: {e}")),
            }
        }
        out
    })
}
