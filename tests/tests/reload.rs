//! Hot reload under traffic: a hundred policy flips while one device keeps
//! opening connections to an allowed server and another keeps probing a
//! forbidden one. No allowed packet may be dropped, no forbidden one pass,
//! and a broken file in the middle changes nothing. Editing the file (via
//! rename, as editors do) reloads without a signal.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use iotfence_common::{Reason, Verdict};
use iotfence_tests::lab::{DeviceSpec, Lab, SERVER_A, SERVER_B};

const STREAMER: DeviceSpec = DeviceSpec {
    name: "streamer",
    mac: "02:00:5e:10:00:11",
    host: 11,
};
const PROBER: DeviceSpec = DeviceSpec {
    name: "prober",
    mac: "02:00:5e:10:00:12",
    host: 12,
};

/// Two policies that differ in a rule nobody uses, so every reload really
/// rewrites the maps, while the streamer's rule stays.
fn policy(variant: usize) -> String {
    format!(
        "profiles:
  streamer:
    use: [dhcp, dns]
    egress:
      - to: {SERVER_A}
        proto: tcp
        ports: 443
      - to: 203.0.113.{}
        proto: tcp
        ports: {}
  prober:
    use: [dns]
devices:
  - name: streamer
    mac: 02:00:5e:10:00:11
    profile: streamer
  - name: prober
    mac: 02:00:5e:10:00:12
    profile: prober
",
        90 + variant % 2,
        8000 + variant % 2
    )
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[test]
fn a_hundred_reloads_under_traffic_misjudge_nothing() {
    let mut lab = Lab::build(&[STREAMER, PROBER], &[443]).unwrap();
    let cfg = lab.write_config("xdp", &policy(0)).unwrap();
    lab.start_daemon(&cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (allowed, forbidden) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let streamer = {
        let (stop, t) = (stop.clone(), allowed.clone());
        let ns = lab.device("streamer");
        let file = std::fs::File::open(ns.path()).unwrap();
        std::thread::spawn(move || {
            iotfence_tests::lab::enter_ns(&file).unwrap();
            let to: SocketAddr = format!("{SERVER_A}:443").parse().unwrap();
            // Bounded: at most 20,000 connections or 120 s.
            let deadline = Instant::now() + Duration::from_secs(120);
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let good = (|| -> std::io::Result<()> {
                    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    let mut b = [0u8; 5];
                    s.read_exact(&mut b)?;
                    s.write_all(b"ping")?;
                    let mut e = [0u8; 4];
                    s.read_exact(&mut e)?;
                    if &e != b"ping" {
                        return Err(std::io::ErrorKind::InvalidData.into());
                    }
                    Ok(())
                })();
                let c = if good.is_ok() { &t.ok } else { &t.failed };
                c.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let prober = {
        let (stop, t) = (stop.clone(), forbidden.clone());
        let ns = lab.device("prober");
        let file = std::fs::File::open(ns.path()).unwrap();
        std::thread::spawn(move || {
            iotfence_tests::lab::enter_ns(&file).unwrap();
            let to: SocketAddr = format!("{SERVER_B}:443").parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                let c = match TcpStream::connect_timeout(&to, Duration::from_millis(100)) {
                    Ok(_) => &t.ok,
                    Err(_) => &t.failed,
                };
                c.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let daemon = lab.daemon.as_ref().unwrap();
    for i in 1..=100 {
        std::fs::write(lab.dir.join("policy.yaml"), policy(i)).unwrap();
        assert!(
            daemon.reload().unwrap(),
            "reload {i} rejected:\n{}",
            daemon.log()
        );
        if i == 50 {
            std::fs::write(lab.dir.join("policy.yaml"), "profiles: [broken\n").unwrap();
            assert!(!daemon.reload().unwrap(), "a broken file must be rejected");
        }
    }
    // Saved the way editors do: a new file renamed over the old one, no
    // signal. The daemon notices and reloads.
    let reloaded = daemon
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("policy reloaded"))
        .count();
    let tmp = lab.dir.join(".policy.yaml.swp");
    std::fs::write(&tmp, policy(101)).unwrap();
    std::fs::rename(&tmp, lab.dir.join("policy.yaml")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon
        .stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("policy reloaded"))
        .count()
        == reloaded
    {
        assert!(
            Instant::now() < deadline,
            "no reload after the file was replaced:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
    prober.join().unwrap();
    let (ok, failed) = (
        allowed.ok.load(Ordering::Relaxed),
        allowed.failed.load(Ordering::Relaxed),
    );
    assert!(
        ok >= 100,
        "only {ok} allowed connections during the reloads"
    );
    assert_eq!(
        failed, 0,
        "allowed connections failed during reloads ({ok} ok)"
    );
    assert_eq!(
        lab.dropped(1),
        0,
        "packets of the allowed stream were dropped"
    );
    let passed = forbidden.ok.load(Ordering::Relaxed);
    assert_eq!(passed, 0, "a forbidden connection got through");
    assert!(forbidden.failed.load(Ordering::Relaxed) > 10);
    for r in [Reason::Rule, Reason::Flow, Reason::Learned] {
        assert_eq!(
            lab.counter(2, Verdict::Allowed, r),
            0,
            "prober allowed by {}",
            r.name()
        );
    }
    assert!(lab.counter(2, Verdict::Dropped, Reason::NotAllowed) > 10);
}
