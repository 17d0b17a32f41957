//! A DNS flood from one device leaves the others learning.

use std::{net::IpAddr, time::Duration};

use hickory_proto::rr::RecordType;
use iotfence_common::{Reason, Verdict};
use iotfence_tests::{
    dns::{mac_of, Dnsmasq},
    lab::{Lab, Server, ROUTER_IOT_IP},
    packet::{self, Packet},
    trials::{self, DEVICE, POLICY},
};

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
    let over_budget = lab.global(iotfence_common::Global::DnsQueryBudget);
    let no_daemon = lab.global(iotfence_common::Global::DnsNoDaemon);
    eprintln!(
        "flood: {frames} frames; over budget {over_budget}; answers dropped for no daemon {no_daemon}; queries copied {}; unknown allowed {} dropped {}",
        lab.global(iotfence_common::Global::DnsQueries),
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
