//! Enforcement from boot: the daemon starts before the network (its unit is
//! ordered before network-pre.target), so the IoT interface does not exist
//! yet. It must start anyway, say what it waits for, and attach the moment
//! the interface appears: a device that floods forbidden traffic from
//! before the interface exists gets nothing through, not even in the first
//! milliseconds.

use std::{
    net::UdpSocket,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use iotfence_common::{Reason, Verdict};
use iotfence_tests::lab::{Lab, CAMERA, CAMERA_POLICY, SERVER_A, SERVER_B};

/// Where the flood goes: a port of the internet host the profile forbids.
const FLOOD_PORT: u16 = 9999;

fn boots_before_its_interface(attach: &str) {
    let mut lab = Lab::build(&[CAMERA], &[443]).unwrap();
    lab.remove_iot0().unwrap();
    let cfg = lab.write_config(attach, CAMERA_POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    let log = || lab.daemon.as_ref().unwrap().log();
    assert!(
        log().contains("interface does not exist yet"),
        "the daemon says what it waits for:\n{}",
        log()
    );

    // What reaches the internet host on the forbidden port.
    let arrived = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (arrived_in, stop_in) = (arrived.clone(), stop.clone());
    let sink = lab.internet.spawn(move || {
        let s = UdpSocket::bind((SERVER_B, FLOOD_PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 64];
        while !stop_in.load(Ordering::Relaxed) {
            if s.recv(&mut buf).is_ok() {
                arrived_in.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // The device sends from before the interface exists, every 200 µs,
    // bounded in count and time.
    let stop_out = stop.clone();
    let sent = lab.device("cam-1").spawn(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0u64;
        while !stop_out.load(Ordering::Relaxed) && Instant::now() < deadline && n < 100_000 {
            if s.send_to(b"boot", (SERVER_B, FLOOD_PORT)).is_ok() {
                n += 1;
            }
            thread::sleep(Duration::from_micros(200));
        }
        n
    });
    thread::sleep(Duration::from_millis(300));

    let created = lab.create_iot0().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log().contains("enforcing again") {
        assert!(
            Instant::now() < deadline,
            "not attached 5 s after the interface appeared:\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(2));
    }
    let window = created.elapsed();
    // The flood goes on against the attached judge for a while.
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    let sent = sent.join().unwrap();
    sink.join().unwrap();
    let dropped = lab.counter(1, Verdict::Dropped, Reason::NotAllowed);
    eprintln!("{attach}: attached within {window:?} of the interface's creation (polled every 2 ms); {sent} forbidden datagrams sent, {dropped} dropped, {} arrived", arrived.load(Ordering::Relaxed));
    assert!(dropped > 100, "the flood reached the router and was judged");
    assert_eq!(
        arrived.load(Ordering::Relaxed),
        0,
        "forbidden datagrams passed while the interface came up"
    );
    // And the device's allowed traffic works.
    assert!(lab
        .device("cam-1")
        .connect(SERVER_A, 443, Duration::from_millis(1500)));
}

#[test]
fn xdp_enforces_from_the_moment_the_interface_appears() {
    boots_before_its_interface("xdp");
}

#[test]
fn tc_enforces_from_the_moment_the_interface_appears() {
    boots_before_its_interface("tc");
}
