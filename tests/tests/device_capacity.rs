//! `max_devices` on the real kernel: it sizes the device-indexed maps, a
//! device with an id beyond the default capacity is judged and counted,
//! and a pinned map with less room than configured is refused.

use iotfence::{
    kernel::{counters::Counters, load::Datapath, pins},
    metrics::render::slots,
};
use iotfence_common::{
    consts::{device_map_entries, DEVICE_MAPS, MAX_DEVICES},
    Verdict,
};
use iotfence_tests::{
    fixtures::{self, CAM_MAC},
    harness::{config_at, Action, Harness, Hook},
    packet::*,
    privileged::PinDir,
};

/// Packets counted for `device` with `verdict`, over every reason.
fn counted(h: &Harness, device: u32, verdict: Verdict) -> u64 {
    slots()
        .filter(|(v, _)| *v == verdict)
        .map(|(v, r)| h.count(device, v, r))
        .sum()
}

#[test]
fn max_devices_sizes_the_device_maps_and_high_ids_are_counted() {
    let devices = 10_000;
    let extra = format!("{}max_devices: {devices}\n", fixtures::CONFIG_EXTRA);
    let mut h = Harness::new(fixtures::POLICY, &extra);
    for (name, _) in DEVICE_MAPS {
        let have = pins::map_data(&h.pins.path, name)
            .unwrap()
            .info()
            .unwrap()
            .max_entries();
        assert_eq!(Some(have), device_map_entries(name, devices), "{name}");
    }
    assert_eq!(h.counters.devices(), devices);
    // cam-1 under an id past the default capacity, as the id table hands
    // out once a large site's cursor gets there.
    let high = devices - 1;
    assert!(high >= MAX_DEVICES);
    let mut policy = h.policy.clone();
    policy
        .devices
        .iter_mut()
        .find(|d| d.name == "cam-1")
        .unwrap()
        .id = high;
    h.dp.apply(&h.cfg, &policy).unwrap();
    h.policy = policy;
    let to = |port| {
        Packet::eth(CAM_MAC, ROUTER_MAC)
            .ipv4(v4("192.0.2.10"), v4("198.51.100.10"))
            .tcp(40_000, port)
            .flags(TCP_SYN)
            .build()
    };
    assert_eq!(h.judge(Hook::Xdp, &to(443)), Action::Pass);
    assert_eq!(h.judge(Hook::Xdp, &to(22)), Action::Drop);
    assert_eq!(counted(&h, high, Verdict::Allowed), 1);
    assert_eq!(counted(&h, high, Verdict::Dropped), 1);
    // Not judged as unknown (id 0) nor under its old id.
    assert_eq!(counted(&h, 0, Verdict::Dropped), 0);
    assert_eq!(counted(&h, 1, Verdict::Allowed), 0);
}

fn load(pins: &PinDir, max_devices: u32) -> anyhow::Result<Datapath> {
    let cfg = config_at(&pins.path, &format!("max_devices: {max_devices}\n"));
    Datapath::load(&pins.path, &cfg.dns, cfg.max_devices)
}

#[test]
fn pinned_device_maps_need_room_for_max_devices() {
    let pins = PinDir::new();
    drop(load(&pins, MAX_DEVICES).unwrap());
    // More than the pins hold: refused, with the way out.
    let err = match load(&pins, 4096) {
        Ok(_) => panic!("pins for 2048 devices were adopted for 4096"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("max_devices: 4096"), "{err}");
    assert!(err.contains("iotfence detach"), "{err}");
    // Less: the larger pins are kept (every id handed out fits them).
    let dp = load(&pins, 1024).unwrap();
    assert_eq!(Counters::open(&dp.pin_dir).unwrap().devices(), MAX_DEVICES);
}
