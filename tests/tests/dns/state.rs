//! The daemon's state files: private, and not trusted beyond what they
//! can prove.

use hickory_proto::rr::RecordType;
use iotfence_tests::{
    dns::{Dnsmasq, Stub},
    lab::{Lab, Server, ROUTER_IOT_IP},
    trials::{DEVICE, POLICY},
};

use super::{connect, ip};

/// A state file cannot grant more than an answer could: restored lifetimes
/// are cut to max_ttl + grace, and an absurd deadline (u64::MAX, which
/// overflowed the debug build) is cut too (issue 15, row 8).
/// The files that map devices to addresses and names are 0600 (the events
/// file also when it existed looser), the state directory the daemon
/// creates 0700 (issue 15, row 11: they were 0644 and 0755).
#[test]
fn state_and_event_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let state = lab.dir.join("state");
    assert!(!state.exists());
    std::fs::write(lab.events_file(), b"").unwrap();
    std::fs::set_permissions(lab.events_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = lab.write_config("xdp", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    assert!(lab.daemon.as_mut().unwrap().terminate().unwrap().success());
    lab.daemon = None;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700, "state directory");
    for f in ["learned.json", "device-ids.json"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&lab.events_file()), 0o600, "events file");
}

/// Device ids that cannot be trusted (an unreadable device-ids.json) must
/// not hand one device's unexplained kernel entries to the device that now
/// holds its id (issue 15, row 7: device B reached device A's learned
/// address after a restart).
#[test]
fn unexplained_entries_are_not_handed_to_a_new_holder_of_the_id() {
    use iotfence_tests::lab::DeviceSpec;
    const OTHER: DeviceSpec = DeviceSpec {
        name: "dev-2",
        mac: "02:00:5e:10:00:02",
        host: 11,
    };
    let other = "  - name: dev-2\n    mac: 02:00:5e:10:00:02\n    profile: vendor\n";
    let mut lab = Lab::build(&[DEVICE, OTHER], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts = vec![("keep.vendor.example".to_string(), ip("203.0.113.171"))];
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab
        .write_config("xdp", &format!("{POLICY}{other}"))
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    let answer = lab
        .device("dev-1")
        .run(|| {
            Stub::new(ROUTER_IOT_IP)
                .unwrap()
                .resolve("keep.vendor.example", RecordType::A)
        })
        .unwrap();
    assert_eq!(answer, Some(vec![ip("203.0.113.171")]));
    assert!(
        lab.learned(1, ip("203.0.113.171")).is_some(),
        "dev-1 (id 1) learned it"
    );
    // A crash before the credit was saved, and a damaged id table.
    lab.daemon.as_mut().unwrap().kill();
    lab.daemon = None;
    let state = lab.dir.join("state");
    let _ = std::fs::remove_file(state.join("learned.json"));
    std::fs::write(state.join("device-ids.json"), b"{\"by_name\": {\"dev-").unwrap();
    // dev-2 listed first now: fresh ids give it id 1.
    let reordered = POLICY.replace("devices:\n", &format!("devices:\n{other}"));
    let reordered = reordered.trim_end_matches(other).to_string();
    lab.write_config("xdp", &reordered).unwrap();
    lab.start_daemon(&cfg).unwrap();
    assert!(
        !connect(lab.device("dev-2"), ip("203.0.113.171")),
        "dev-2 reached dev-1's learned address"
    );
    let log = lab.daemon.as_ref().unwrap().log();
    assert!(log.contains("dropped_unexplained=1"), "{log}");
    assert!(state.join("device-ids.json.bad").exists());
}
