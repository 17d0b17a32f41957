//! Learn mode end to end: `iotfence learn` against the running daemon while
//! a device runs a known traffic mix (sibling names to collapse, TCP and
//! UDP, a literal address, a burst past the event rate limit); the draft
//! passes `iotfence check`, the device is back on its profile afterwards,
//! and the draft applied in enforce mode lets the same mix through and
//! blocks what the mix never did. Also: an interrupted client still drafts
//! and ends learning, and a killed one leaves it to the daemon's deadline.

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, UdpSocket},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hickory_proto::rr::RecordType;
use iotfence_tests::{
    dns::{Dnsmasq, Stub},
    lab::{daemon_binary, enter_ns, DeviceSpec, Lab, Netns, Server, UdpEcho, ROUTER_IOT_IP},
};

const DEVICE: DeviceSpec = DeviceSpec {
    name: "dev-1",
    mac: "02:00:5e:10:00:01",
    host: 10,
};

/// The device's configured profile allows one name of the mix: learning
/// must report it all the same (the stand-in profile allows nothing).
const POLICY: &str = "
profiles:
  vendor:
    use: [dhcp, dns]
    egress:
      - to: api.lab-vendor.example
        proto: tcp
        ports: 443
devices:
  - name: dev-1
    mac: 02:00:5e:10:00:01
    profile: vendor
";

/// Three siblings (collapse to `*.cdn.lab-vendor.example`), the API and a
/// time server; the lab's internet answers 203.0.113.128/25.
const NAMES: &[(&str, &str)] = &[
    ("a.cdn.lab-vendor.example", "203.0.113.131"),
    ("b.cdn.lab-vendor.example", "203.0.113.132"),
    ("c.cdn.lab-vendor.example", "203.0.113.133"),
    ("api.lab-vendor.example", "203.0.113.134"),
    ("time.lab-vendor.example", "203.0.113.135"),
    // Not in the mix: the extra destination, blocked once enforced.
    ("other.lab-vendor.example", "203.0.113.136"),
    // Resolved by the mix, never reached: listed in a comment only.
    ("unused.lab-vendor.example", "203.0.113.137"),
];
const UNUSED: usize = 6;
/// Reached without DNS (a hard-coded broker), TCP 8883.
const LITERAL: &str = "203.0.113.150";
/// UDP datagrams to LITERAL, one port each, in one burst: twice the lab's
/// event burst (50), so the rate limit would hide half of them.
const BURST: std::ops::Range<u16> = 20_000..20_100;

const T: Duration = Duration::from_secs(1);

fn resolve(dev: &Netns, name: &'static str) -> Option<IpAddr> {
    dev.run(move || Stub::new(ROUTER_IOT_IP).ok()?.resolve(name, RecordType::A))
        .ok()
        .flatten()
        .and_then(|a| a.first().copied())
}

/// A UDP echo round trip from the device.
fn udp(dev: &Netns, addr: &str, port: u16) -> bool {
    let to = SocketAddr::new(addr.parse().unwrap(), port);
    dev.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").ok()?;
        s.set_read_timeout(Some(T)).ok()?;
        s.send_to(b"ping", to).ok()?;
        let mut buf = [0u8; 16];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(&buf[..n] == b"ping")
    })
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// One round of the mix; the failures (empty: everything worked).
fn mix(dev: &Netns, burst: bool) -> Vec<String> {
    let mut failed = Vec::new();
    for (name, addr) in NAMES[..5].iter().chain(&NAMES[UNUSED..]) {
        match resolve(dev, name) {
            Some(a) if a.to_string() == *addr => {}
            other => failed.push(format!("{name} resolved to {other:?}")),
        }
    }
    for (name, addr) in &NAMES[..4] {
        if !dev.connect(addr, 443, T) {
            failed.push(format!("{name} ({addr}):443/tcp"));
        }
    }
    if !udp(dev, NAMES[4].1, 123) {
        failed.push("time.lab-vendor.example:123/udp".into());
    }
    if !dev.connect(LITERAL, 8883, T) {
        failed.push(format!("{LITERAL}:8883/tcp"));
    }
    if burst {
        let to: IpAddr = LITERAL.parse().unwrap();
        dev.run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for p in BURST {
                let _ = s.send_to(b"x", SocketAddr::new(to, p));
            }
        })
        .unwrap();
    }
    failed
}

/// `iotfence learn` in the router namespace.
fn learn(lab: &Lab, cfg: &Path, seconds: u64, out: &Path) -> Child {
    let ns = std::fs::File::open(lab.router.path()).unwrap();
    let mut cmd = Command::new(daemon_binary());
    cmd.args([
        "learn",
        DEVICE.name,
        "--for",
        &format!("{seconds}s"),
        "--config",
    ])
    .arg(cfg)
    .arg("--output")
    .arg(out)
    .stderr(Stdio::piped());
    unsafe { cmd.pre_exec(move || enter_ns(&ns)) };
    cmd.spawn().unwrap()
}

/// Waits (bounded) until the daemon logged `what` `n` times.
fn logged(lab: &Lab, what: &str, n: usize) {
    let d = lab.daemon.as_ref().unwrap();
    let t0 = Instant::now();
    while d.log().matches(what).count() < n {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no {what:?} (x{n}) in:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finished(child: Child) -> (std::process::ExitStatus, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// On its configured profile: the literal broker is dropped, the API not.
fn back_on_its_profile(dev: &Netns) {
    assert!(
        !dev.connect(LITERAL, 8883, T),
        "still learning: the literal address is reachable"
    );
    assert_eq!(
        resolve(dev, NAMES[3].0).map(|a| a.to_string()).as_deref(),
        Some(NAMES[3].1)
    );
    assert!(
        dev.connect(NAMES[3].1, 443, T),
        "its profile's name is not reachable"
    );
}

#[test]
fn learn_drafts_a_profile_that_enforces_the_mix() {
    let t0 = Instant::now();
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _servers = [
        Server::start_any(&lab.internet, 443).unwrap(),
        Server::start_any(&lab.internet, 8883).unwrap(),
        Server::start_any(&lab.internet, 8080).unwrap(),
    ];
    let _echo = UdpEcho::start_any(&lab.internet, 123).unwrap();
    let hosts: Vec<(String, IpAddr)> = NAMES
        .iter()
        .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
        .collect();
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab.write_config("xdp", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    let dev = lab.device(DEVICE.name);
    assert!(!dev.connect(LITERAL, 8883, T), "enforced before learning");

    // Learning: the mix, round after round, for the whole session.
    // Half a minute: the mix takes half a second a round, so ~50 rounds (the
    // brief's minute would add 30 s of waiting to CI for nothing the mix
    // needs).
    let seconds = 30;
    let draft = lab.dir.join("learned").join("dev-1.yaml");
    std::fs::create_dir_all(draft.parent().unwrap()).unwrap();
    let client = learn(&lab, &cfg, seconds, &draft);
    logged(&lab, "learning started", 1);
    let until = Instant::now() + Duration::from_secs(seconds - 2);
    let mut rounds = 0;
    while Instant::now() < until {
        let failed = mix(dev, rounds == 0);
        assert!(
            failed.is_empty(),
            "while learning (audited, nothing blocked): {failed:?}"
        );
        rounds += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, stderr) = finished(client);
    assert!(status.success(), "iotfence learn: {status}\n{stderr}");
    assert!(
        stderr.contains("the draft passes iotfence check"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&draft).unwrap();
    println!("{rounds} rounds of the mix in {seconds} s; the draft:\n{text}");

    // Back on its profile the moment learning ended; its flows were the
    // session's, not violation events.
    back_on_its_profile(dev);
    let events = lab.daemon.as_ref().unwrap().events();
    assert!(
        !events.iter().any(|e| e["profile"] == "learning@dev-1"),
        "a learning device's flows were logged as violations"
    );
    assert!(lab
        .daemon
        .as_ref()
        .unwrap()
        .log()
        .contains("learning ended: the device is back on its profile"));

    // The draft, as written.
    assert!(
        text.contains("source: \"learned by iotfence learn on "),
        "{text}"
    );
    assert!(text.contains("    use: [dns]\n"), "{text}");
    assert!(
        text.contains(
            "- to: [\"*.cdn.lab-vendor.example\"]\n        proto: tcp\n        ports: [443]\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "- to: [\"api.lab-vendor.example\"]\n        proto: tcp\n        ports: [443]\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "- to: [\"time.lab-vendor.example\"]\n        proto: udp\n        ports: [123]\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "POLICY SMELL: {LITERAL} was reached without a DNS answer"
        )),
        "{text}"
    );
    assert!(!text.contains("other.lab-vendor.example"), "{text}");
    assert!(text.contains("    # Resolved but never reached (not allowed above):\n    #   unused.lab-vendor.example: "), "{text}");
    // Every port of the burst, past the event rate limit (consecutive
    // ports as one range).
    let udp_rule = format!(
        "- to: [\"{LITERAL}\"]\n        proto: udp\n        ports: [\"{}-{}\"]\n",
        BURST.start,
        BURST.end - 1
    );
    assert!(
        text.contains(&udp_rule),
        "not every burst port was recorded:\n{text}"
    );
    let tcp_rule = format!("- to: [\"{LITERAL}\"]\n        proto: tcp\n        ports: [8883]\n");
    assert!(text.contains(&tcp_rule), "{text}");

    // The real checker, as an admin runs it.
    let check = Command::new(daemon_binary())
        .args(["check", "--config"])
        .arg(&cfg)
        .arg(&draft)
        .output()
        .unwrap();
    assert!(check.status.success(), "iotfence check: {check:?}");

    // Applied in enforce mode: the mix passes, the rest is dropped.
    let site = "include: [learned/dev-1.yaml]\ndevices:\n  - name: dev-1\n    mac: 02:00:5e:10:00:01\n    profile: dev-1-learned\n";
    std::fs::write(lab.dir.join("policy.yaml"), site).unwrap();
    assert!(
        lab.daemon.as_ref().unwrap().reload().unwrap(),
        "{}",
        lab.daemon.as_ref().unwrap().log()
    );
    let failed = mix(dev, false);
    assert!(
        failed.is_empty(),
        "the learned profile blocks the mix: {failed:?}"
    );
    let other = NAMES[5];
    assert_eq!(
        resolve(dev, other.0).map(|a| a.to_string()).as_deref(),
        Some(other.1)
    );
    assert!(!dev.connect(other.1, 443, T), "an extra name is reachable");
    assert!(
        !dev.connect(NAMES[3].1, 8080, T),
        "an extra port of a learned name is reachable"
    );
    assert!(!udp(dev, NAMES[4].1, 124), "an extra UDP port is reachable");
    println!("whole test: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn an_interrupted_or_killed_client_ends_learning() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _servers = [
        Server::start_any(&lab.internet, 443).unwrap(),
        Server::start_any(&lab.internet, 8883).unwrap(),
    ];
    let hosts: Vec<(String, IpAddr)> = NAMES
        .iter()
        .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
        .collect();
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab.write_config("tc", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    let dev = lab.device(DEVICE.name);

    // Ctrl-C: learning ends at once, and what was seen is drafted.
    let draft = lab.dir.join("interrupted.yaml");
    let client = learn(&lab, &cfg, 600, &draft);
    logged(&lab, "learning started", 1);
    assert!(dev.connect(LITERAL, 8883, T), "not audited while learning");
    // A connection opened while learned, still open when learning ends.
    let to: SocketAddr = format!("{LITERAL}:8883").parse().unwrap();
    let mut open = dev
        .run(move || {
            let mut s = std::net::TcpStream::connect_timeout(&to, T).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            let mut hello = [0u8; 5];
            s.read_exact(&mut hello).unwrap();
            s
        })
        .unwrap();
    unsafe { libc::kill(client.id() as i32, libc::SIGINT) };
    let (status, stderr) = finished(client);
    assert!(status.success(), "{status}\n{stderr}");
    let text = std::fs::read_to_string(&draft).unwrap();
    assert!(text.contains("(stopped early by the client)"), "{text}");
    assert!(
        text.contains(&format!(
            "- to: [\"{LITERAL}\"]\n        proto: tcp\n        ports: [8883]\n"
        )),
        "{text}"
    );
    logged(&lab, "learning: policy applied", 2);
    back_on_its_profile(dev);
    // Its flows went with the session: the open connection is dropped now.
    open.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    assert!(
        open.read_exact(&mut echo).is_err(),
        "a flow opened while learned outlived the session"
    );

    // Killed outright: the daemon ends learning at the deadline itself.
    let mut client = learn(&lab, &cfg, 2, &lab.dir.join("killed.yaml"));
    logged(&lab, "learning started", 2);
    client.kill().unwrap();
    client.wait().unwrap();
    assert!(dev.connect(LITERAL, 8883, T), "not audited while learning");
    logged(&lab, "learning: policy applied", 4);
    back_on_its_profile(dev);
    // A wrong token is refused before anything changes.
    let token = lab.dir.join("state").join("control.token");
    std::fs::write(&token, "0".repeat(64)).unwrap();
    let (status, stderr) = finished(learn(&lab, &cfg, 5, &lab.dir.join("refused.yaml")));
    assert_eq!(status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("control token"), "{stderr}");

    // A daemon stopped while a device is learned leaves the configured
    // profile pinned, not the learning one.
    lab.daemon.as_mut().unwrap().terminate().unwrap();
    lab.start_daemon(&cfg).unwrap();
    let client = learn(&lab, &cfg, 600, &lab.dir.join("stopped.yaml"));
    logged(&lab, "learning started", 1);
    assert!(
        lab.device(DEVICE.name).connect(LITERAL, 8883, T),
        "not audited while learning"
    );
    let d = lab.daemon.as_mut().unwrap();
    d.terminate().unwrap();
    let log = d.log();
    assert!(log.contains("learning ended by the shutdown"), "{log}");
    assert!(
        !lab.device(DEVICE.name).connect(LITERAL, 8883, T),
        "the learning profile outlived the daemon"
    );
    let (status, stderr) = finished(client);
    assert_eq!(status.code(), Some(69), "{stderr}");
}
