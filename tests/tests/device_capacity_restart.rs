//! `max_devices` across daemon restarts: the pinned device maps keep their
//! size, so a lowered setting keeps them (and adopts the verified
//! programs: the capacity is not part of their fingerprint, the maps they
//! use are the same pins), and a raised one past them refuses to start,
//! naming the way out, while the pinned programs go on enforcing.

use iotfence::kernel::counters::Counters;
use iotfence_tests::{
    lab::Lab,
    trials::{DEVICE, POLICY},
};

/// Restarts the lab's daemon (SIGKILL, as a crash) with `max_devices`.
fn restart_with(lab: &mut Lab, max_devices: u32) -> anyhow::Result<String> {
    let cfg = lab
        .write_config_with("xdp", POLICY, &format!("max_devices: {max_devices}\n"))
        .unwrap();
    if let Some(mut d) = lab.daemon.take() {
        d.kill();
    }
    lab.start_daemon(&cfg)?;
    Ok(lab.daemon.as_ref().unwrap().log())
}

#[test]
fn pinned_device_maps_outlive_a_restart_with_another_max_devices() {
    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    restart_with(&mut lab, 4096).unwrap();
    assert_eq!(Counters::open(&lab.pins.path).unwrap().devices(), 4096);

    let log = restart_with(&mut lab, 1024).unwrap();
    assert!(log.contains("adopting the pinned programs"), "{log}");
    assert!(
        log.contains("keeping the larger pinned device maps"),
        "{log}"
    );
    assert_eq!(Counters::open(&lab.pins.path).unwrap().devices(), 4096);

    let err = format!("{:#}", restart_with(&mut lab, 8192).unwrap_err());
    assert!(
        err.contains("max_devices: 8192") && err.contains("iotfence detach"),
        "{err}"
    );
    assert!(
        lab.pins.path.join("links").join("iot0_xdp").exists(),
        "the pinned judge stays attached"
    );
}
