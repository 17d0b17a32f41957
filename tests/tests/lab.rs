//! End-to-end in network namespaces: real TCP through the router, the
//! daemon as users run it, SIGKILL and restart.

use std::time::Duration;

use aya::programs::links::PinnedLink;
use iotfence_common::{consts::prog_names, Reason, Verdict};
use iotfence_tests::lab::{Daemon, DeviceSpec, Lab, SERVER_A, SERVER_B};

const POLICY: &str = r#"
profiles:
  camera:
    use: [dhcp, dns]
    egress:
      - to: 198.51.100.0/24
        proto: tcp
        ports: 443
  observer:
    mode: audit
    egress:
      - to: 198.51.100.0/24
        proto: tcp
        ports: 443
devices:
  - name: cam-1
    mac: 02:00:5e:10:00:01
    profile: camera
  - name: watch-1
    mac: 02:00:5e:10:00:02
    profile: observer
"#;

const DEVICES: &[DeviceSpec] = &[
    DeviceSpec {
        name: "cam-1",
        mac: "02:00:5e:10:00:01",
        host: 10,
    },
    DeviceSpec {
        name: "watch-1",
        mac: "02:00:5e:10:00:02",
        host: 11,
    },
];

const CAM: u32 = 1;
const WATCH: u32 = 2;
const T: Duration = Duration::from_millis(1500);

fn lab(attach: &str) -> (Lab, std::path::PathBuf) {
    let mut lab = Lab::build(DEVICES, &[443, 22]).expect("building the lab");
    let cfg = lab.write_config(attach, POLICY).unwrap();
    lab.start_daemon(&cfg).expect("starting iotfence");
    (lab, cfg)
}

fn allowed_and_forbidden(lab: &Lab) {
    let cam = lab.device("cam-1");
    let dropped_before = lab.counter(CAM, Verdict::Dropped, Reason::NotAllowed);
    assert!(cam.connect(SERVER_A, 443, T), "allowed connection failed");
    assert!(!cam.connect(SERVER_A, 22, T), "forbidden port connected");
    assert!(
        !cam.connect(SERVER_B, 443, T),
        "forbidden destination connected"
    );
    assert!(
        lab.counter(CAM, Verdict::Dropped, Reason::NotAllowed) >= dropped_before + 2,
        "drops were not counted"
    );
}

fn run_end_to_end(attach: &str) {
    let (lab, _) = lab(attach);
    assert!(lab.counter(CAM, Verdict::Allowed, Reason::Rule) == 0);
    allowed_and_forbidden(&lab);
    assert!(
        lab.counter(CAM, Verdict::Allowed, Reason::Rule) >= 1,
        "the allowed SYN was counted by rule"
    );
    assert!(
        lab.counter(CAM, Verdict::Allowed, Reason::Flow) >= 1,
        "the rest of the connection was counted by flow"
    );
    // Audit mode: the forbidden connection works, and is counted as audited.
    let watch = lab.device("watch-1");
    assert!(watch.connect(SERVER_A, 22, T), "audit mode must pass");
    assert!(lab.counter(WATCH, Verdict::Audited, Reason::NotAllowed) >= 1);
    assert_eq!(lab.counter(WATCH, Verdict::Dropped, Reason::NotAllowed), 0);
    // Violation events reach the daemon's output with names attached.
    let d = lab.daemon.as_ref().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ev = d.events();
        let cam_22 = ev.iter().any(|e| {
            e["device"] == "cam-1"
                && e["dst_port"] == 22
                && e["verdict"] == "dropped"
                && e["dst"] == SERVER_A
        });
        let audited = ev
            .iter()
            .any(|e| e["device"] == "watch-1" && e["verdict"] == "audited");
        if cam_22 && audited {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing violation events: {ev:?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn xdp_allows_drops_audits_and_reports() {
    run_end_to_end("xdp");
}

#[test]
fn tc_allows_drops_audits_and_reports() {
    run_end_to_end("tc");
}

#[test]
fn sigkill_keeps_enforcement_and_a_restart_adopts_the_pins() {
    let (mut lab, cfg) = lab("xdp");
    let link = lab.pins.path.join("links/iot0_xdp");
    let link_id = PinnedLink::from_pin(&link).unwrap();
    let link_id = aya::programs::links::FdLink::from(link_id)
        .info()
        .unwrap()
        .id();
    allowed_and_forbidden(&lab);
    let allowed = lab.counter(CAM, Verdict::Allowed, Reason::Rule);

    lab.daemon.as_mut().unwrap().kill();
    lab.daemon = None;
    // Enforcement goes on without the daemon.
    allowed_and_forbidden(&lab);
    assert!(
        lab.counter(CAM, Verdict::Allowed, Reason::Rule) > allowed,
        "counters kept counting"
    );

    // A broken configuration is refused and changes nothing.
    std::fs::write(
        lab.dir.join("policy.yaml"),
        "profiles:\n  camera:\n    egress:\n      - to: not-an-address\n        proto: tcp\n",
    )
    .unwrap();
    let mut bad = Daemon::spawn(&lab.router, &cfg).unwrap();
    let status = bad.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(65),
        "bad policy exit code; log:\n{}",
        bad.log()
    );
    assert!(
        bad.log()
            .contains("policy.yaml:4:13: error: `not-an-address` is not an IP address or CIDR"),
        "error names file:line: {}",
        bad.log()
    );
    allowed_and_forbidden(&lab);

    // An earlier build's program names (before issue 16's rename): a
    // restart adopts the links (pinned by hook) and replaces those pins.
    let progs = lab.pins.path.join("progs");
    let earlier = [
        (prog_names::XDP, "iotfence_xdp"),
        (prog_names::TC_EGRESS, "iotfence_tc_eg"),
    ];
    for (now, before) in earlier {
        std::fs::rename(progs.join(now), progs.join(before)).unwrap();
    }

    // A restarted daemon adopts the same link and the same counters.
    std::fs::write(lab.dir.join("policy.yaml"), POLICY).unwrap();
    let before = lab.counter(CAM, Verdict::Allowed, Reason::Rule);
    lab.start_daemon(&cfg).unwrap();
    assert!(
        lab.daemon.as_ref().unwrap().log().contains("adopted=true"),
        "{}",
        lab.daemon.as_ref().unwrap().log()
    );
    let again = aya::programs::links::FdLink::from(PinnedLink::from_pin(&link).unwrap())
        .info()
        .unwrap()
        .id();
    assert_eq!(
        again, link_id,
        "the restarted daemon swapped programs inside the same link"
    );
    for (now, before) in earlier {
        assert!(progs.join(now).exists(), "{now} pinned again");
        assert!(!progs.join(before).exists(), "{before}: stale pin left");
    }
    assert!(
        lab.counter(CAM, Verdict::Allowed, Reason::Rule) >= before,
        "counters were not reset"
    );
    allowed_and_forbidden(&lab);

    // SIGTERM drains and exits 0; enforcement stays pinned.
    let status = lab.daemon.as_mut().unwrap().terminate().unwrap();
    assert!(status.success(), "SIGTERM exit: {status}");
    lab.daemon = None;
    assert!(link.exists());
    allowed_and_forbidden(&lab);

    // `iotfence detach` refuses while a daemon runs, then removes
    // enforcement: the forbidden port connects again.
    lab.start_daemon(&cfg).unwrap();
    let detach = |force: bool| {
        let mut c = std::process::Command::new(iotfence_tests::lab::daemon_binary());
        c.args(["detach", "--pin-dir"]).arg(&lab.pins.path);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    let refused = detach(false);
    assert_eq!(refused.status.code(), Some(64), "{refused:?}");
    assert!(link.exists());
    // A second daemon for the same pins is refused as "another runs" (75),
    // one whose metrics address is taken as a configuration problem (78);
    // neither as "the kernel refused" (71), and neither touches the pins.
    let mut second = Daemon::spawn(&lab.router, &cfg).unwrap();
    let status = second.wait().unwrap();
    assert_eq!(status.code(), Some(75), "{}", second.log());
    assert!(
        second.log().contains("another iotfence daemon"),
        "{}",
        second.log()
    );
    let other_pins = iotfence_tests::privileged::PinDir::new();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let other = lab.dir.join("other.yaml");
    std::fs::write(
        &other,
        text.replace(
            &lab.pins.path.display().to_string(),
            &other_pins.path.display().to_string(),
        ),
    )
    .unwrap();
    let mut third = Daemon::spawn(&lab.router, &other).unwrap();
    let status = third.wait().unwrap();
    assert_eq!(status.code(), Some(78), "{}", third.log());
    assert!(
        third.log().contains("binding the metrics address"),
        "{}",
        third.log()
    );
    assert!(link.exists());
    lab.daemon.as_mut().unwrap().terminate().unwrap();
    lab.daemon = None;
    let done = detach(false);
    assert!(done.status.success(), "{done:?}");
    assert!(!lab.pins.path.exists(), "pins removed");
    assert!(
        lab.device("cam-1").connect(SERVER_A, 22, T),
        "enforcement removed"
    );
}

/// An interface deleted and re-created (same name, new index) loses every
/// XDP/TC attachment in the kernel; the daemon must notice and attach
/// again (issue 15, row 2: enforcement was silently gone, /readyz still
/// ready). Measured: the time from the new interface existing to
/// enforcement on it, which bounds how long forbidden traffic can pass.
fn reattaches_to_a_recreated_interface(attach: &str) {
    let (mut lab, cfg) = lab(attach);
    allowed_and_forbidden(&lab);
    for round in 0..3 {
        let before = lab
            .daemon
            .as_ref()
            .unwrap()
            .log()
            .matches("enforcing again")
            .count();
        let created = lab.recreate_iot0().unwrap();
        // Bounded wait for the daemon's own word.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let log = lab.daemon.as_ref().unwrap().log();
            if log.matches("enforcing again").count() > before {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no re-attach within 5 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Polled every 5 ms: an upper bound.
        let window = created.elapsed();
        eprintln!("{attach} round {round}: enforcing again {window:?} after iot0 was re-created");
        assert!(
            window < Duration::from_secs(1),
            "re-attach took {window:?}, not within a second"
        );
        allowed_and_forbidden(&lab);
    }
    // Down and up: the attachment stays (nothing to re-attach).
    lab.router
        .sysctl("net.ipv6.conf.iot0.keep_addr_on_down", "1")
        .unwrap();
    lab.router.ip(&["link", "set", "iot0", "down"]).unwrap();
    lab.router.ip(&["link", "set", "iot0", "up"]).unwrap();
    allowed_and_forbidden(&lab);
    // Renamed away: the configured name is gone (reported, not ready);
    // renamed back: enforcing again under its name.
    let log_count =
        |lab: &Lab, what: &str| lab.daemon.as_ref().unwrap().log().matches(what).count();
    let wait_for = |lab: &Lab, what: &str, before: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while log_count(lab, what) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no `{what}` within 5 s:\n{}",
                lab.daemon.as_ref().unwrap().log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let (gone, again) = (
        log_count(&lab, "interface gone"),
        log_count(&lab, "enforcing again"),
    );
    for (from, to) in [("iot0", "iot0x"), ("iot0x", "iot0")] {
        lab.router.ip(&["link", "set", from, "down"]).unwrap();
        lab.router.ip(&["link", "set", from, "name", to]).unwrap();
        lab.router.ip(&["link", "set", to, "up"]).unwrap();
    }
    wait_for(&lab, "interface gone", gone);
    wait_for(&lab, "enforcing again", again);
    allowed_and_forbidden(&lab);
    // A restart meeting the (replaced) pins adopts them.
    lab.daemon.as_mut().unwrap().kill();
    lab.daemon = None;
    lab.recreate_iot0().unwrap();
    lab.start_daemon(&cfg).unwrap();
    allowed_and_forbidden(&lab);
}

#[test]
fn xdp_reattaches_to_a_recreated_interface() {
    reattaches_to_a_recreated_interface("xdp");
}

#[test]
fn tc_reattaches_to_a_recreated_interface() {
    reattaches_to_a_recreated_interface("tc");
}
