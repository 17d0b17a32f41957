//! A trunk: the IoT interface carries several VLANs and `vlans:` names the
//! IoT ones. Frames of those VLANs (by the outer tag) and untagged frames
//! are judged; frames of any other VLAN pass untouched and uncounted. XDP
//! reads the tag in the frame, TC the one the kernel moved into the skb.

use std::net::Ipv4Addr;

use iotfence_common::{consts, Reason, Verdict};
use iotfence_tests::{
    dns::{mac_of, send_frame},
    lab::{Lab, CAMERA, CAMERA_POLICY, SERVER_B},
    packet::Packet,
};

/// (what, tags outermost first as (802.1ad?, VLAN ID), judged).
type Case = (&'static str, &'static [(bool, u16)], bool);

fn judges_only_its_vlans(attach: &str) {
    let mut lab = Lab::build(&[CAMERA], &[]).unwrap();
    // As a NIC without VLAN offloads: the switch side writes tags into the
    // frames and iot0 leaves them there, where XDP reads them (with
    // rx-vlan-offload on, XDP sees no tag: the daemon warns, and judges).
    lab.switch
        .exec(&[
            "ethtool",
            "-K",
            "uplink",
            "txvlan",
            "off",
            "tx-vlan-stag-hw-insert",
            "off",
        ])
        .unwrap();
    lab.router
        .exec(&[
            "ethtool",
            "-K",
            "iot0",
            "rxvlan",
            "off",
            "rx-vlan-stag-hw-parse",
            "off",
        ])
        .unwrap();
    let cfg = lab
        .write_config_with(attach, CAMERA_POLICY, "vlans:\n  iot0: [20, 21]\n")
        .unwrap();
    lab.start_daemon(&cfg).unwrap();
    let cam = lab.device("cam-1");
    let router_mac = mac_of(&lab.router, "iot0").unwrap();
    let cam_mac = mac_of(cam, "eth0").unwrap();
    let forbidden = |tags: &[(bool, u16)]| {
        let mut p = Packet::eth(cam_mac, router_mac);
        for &(outer_s, vid) in tags {
            p = if outer_s { p.svlan(vid) } else { p.vlan(vid) };
        }
        // A valid header checksum: the lab's switch is a bridge, and with
        // br_netfilter a bridge drops IPv4 whose checksum is wrong.
        p.ipv4(Ipv4Addr::new(192, 0, 2, 10), SERVER_B.parse().unwrap())
            .header_checksum()
            .udp(40000, 9999)
            .data(b"trunk")
            .build()
    };
    let cases: [Case; 7] = [
        ("untagged", &[], true),
        ("VLAN 20", &[(false, 20)], true),
        ("VLAN 21", &[(false, 21)], true),
        ("VLAN 30", &[(false, 30)], false),
        ("802.1ad 30 over 20", &[(true, 30), (false, 20)], false),
        ("802.1ad 20 over 30", &[(true, 20), (false, 30)], true),
        ("VLAN 4094", &[(false, 4094)], false),
    ];
    for (what, tags, judged) in cases {
        let before = lab.counter(1, Verdict::Dropped, Reason::NotAllowed);
        for _ in 0..3 {
            send_frame(cam, "eth0", forbidden(tags)).unwrap();
        }
        // Bounded wait for the counter (the frames cross two veths).
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let mut after = before;
        while std::time::Instant::now() < deadline && after < before + 3 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            after = lab.counter(1, Verdict::Dropped, Reason::NotAllowed);
        }
        let want = if judged { before + 3 } else { before };
        assert_eq!(after, want, "{attach}: {what}: judged {judged}");
    }
    let log = lab.daemon.as_ref().unwrap().log();
    assert!(!log.contains("ERROR"), "{log}");
    assert!(!log.contains("strips VLAN tags"), "offloads are off: {log}");

    // Re-created (a new ifindex each time, re-attached by the daemon): the
    // filter follows, and entries of gone interfaces do not pile up (the
    // map holds MAX_TRUNKS).
    for round in 0..3 {
        let before = log_count(&lab, "enforcing again");
        lab.recreate_iot0().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while log_count(&lab, "enforcing again") == before {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no re-attach"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let trunks: aya::maps::HashMap<aya::maps::MapData, u32, iotfence_common::VlanSet> =
        iotfence::kernel::pins::open_pinned(&lab.pins.path, consts::map_names::TRUNKS).unwrap();
    let entries: Vec<u32> = trunks.keys().map(Result::unwrap).collect();
    assert_eq!(
        entries.len(),
        1,
        "one trunk entry, not one per ifindex it had: {entries:?}"
    );
}

fn log_count(lab: &Lab, what: &str) -> usize {
    lab.daemon.as_ref().unwrap().log().matches(what).count()
}

#[test]
fn xdp_judges_only_the_trunks_iot_vlans() {
    judges_only_its_vlans("xdp");
}

#[test]
fn tc_judges_only_the_trunks_iot_vlans() {
    judges_only_its_vlans("tc");
}
