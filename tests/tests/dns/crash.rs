//! A daemon killed between a device's query and its answer: the successor
//! still learns from the answer. The test plays the router's resolver (a
//! socket on the router's own address, so its answers come from the
//! router's stack and are held), so the answer can be sent exactly after
//! the restart.

use std::{
    net::{Ipv4Addr, UdpSocket},
    time::Duration,
};

use hickory_proto::rr::RecordType;
use iotfence_tests::{
    dns::{addresses, answer_bytes, query_bytes},
    lab::{Lab, Server, ROUTER_IOT_IP},
    trials::{DEVICE, POLICY, UNLIMITED_QUERIES},
};

const NAME: &str = "crash.fresh.vendor.example";
const ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 201);
const ID: u16 = 0x5151;

#[test]
fn an_answer_to_a_query_the_killed_daemon_read_is_learned_by_its_successor() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let cfg = lab
        .write_config_with("xdp", POLICY, UNLIMITED_QUERIES)
        .unwrap();
    lab.start_daemon(&cfg).unwrap();

    // The resolver: the router's own socket on port 53.
    let resolver = lab
        .router
        .run(|| UdpSocket::bind((ROUTER_IOT_IP, 53)).unwrap())
        .unwrap();
    resolver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let device = lab
        .device("dev-1")
        .run(|| UdpSocket::bind("0.0.0.0:0").unwrap())
        .unwrap();
    device
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    device
        .send_to(&query_bytes(ID, NAME, RecordType::A), (ROUTER_IOT_IP, 53))
        .unwrap();
    let mut buf = [0u8; 512];
    let (_, client) = resolver
        .recv_from(&mut buf)
        .expect("the query reached the resolver");
    // The daemon has read the query (the kernel copies it as it passes).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !lab.daemon.as_ref().unwrap().log().contains("ready")
        || std::fs::read_to_string(pending_journal(&lab)).map_or(true, |j| !j.contains(NAME))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the query never reached the daemon's journal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    lab.daemon.as_mut().unwrap().kill();
    lab.start_daemon(&cfg).unwrap();
    resolver
        .send_to(&answer_bytes(ID, NAME, ADDR, 300), client)
        .unwrap();
    let n = device
        .recv(&mut buf)
        .expect("the answer reached the device");
    assert_eq!(addresses(&buf[..n]), [std::net::IpAddr::V4(ADDR)]);
    assert!(
        super::connect(lab.device("dev-1"), ADDR.into()),
        "the answered address is allowed: learned by the new daemon\n{}",
        lab.daemon.as_ref().unwrap().log()
    );
    let log = lab.daemon.as_ref().unwrap().log();
    assert!(log.contains("queries in flight restored"), "{log}");
}

/// The journal beside the daemon's lock.
fn pending_journal(lab: &Lab) -> std::path::PathBuf {
    iotfence::lock::path_for(&lab.pins.path).with_extension("pending")
}
