//! The lab demo (`cargo xtask lab`): a router namespace running iotfence on
//! its IoT interface, three simulated devices and an "internet" with
//! servers; traffic, then a per-device summary. Everything is removed at the
//! end, also on Ctrl-C.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use iotfence_common::reason::{REASONS, VERDICTS};
use iotfence_tests::lab::{DeviceSpec, Lab, SERVER_A, SERVER_B};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

const POLICY: &str = r#"
profiles:
  vendor-cloud:
    description: a gateway that talks to its vendor's cloud on HTTPS only
    use: [dhcp, dns]
    egress:
      - to: 198.51.100.0/24
        proto: tcp
        ports: 443
  vendor-cloud-audit:
    description: the same profile in audit mode (learning what a device does)
    mode: audit
    use: [dhcp, dns]
    egress:
      - to: 198.51.100.0/24
        proto: tcp
        ports: 443
devices:
  - name: gateway-1
    mac: 02:00:5e:10:00:01
    profile: vendor-cloud
  - name: sensor-audit
    mac: 02:00:5e:10:00:02
    profile: vendor-cloud-audit
"#;

const DEVICES: &[DeviceSpec] = &[
    DeviceSpec {
        name: "gateway-1",
        mac: "02:00:5e:10:00:01",
        host: 10,
    },
    DeviceSpec {
        name: "sensor-audit",
        mac: "02:00:5e:10:00:02",
        host: 11,
    },
    DeviceSpec {
        name: "compromised",
        mac: "02:00:5e:10:00:66",
        host: 66,
    },
];

fn main() -> anyhow::Result<()> {
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    println!("==> building the lab: router (iot0 192.0.2.1), 3 devices, internet {SERVER_A} and {SERVER_B}");
    let mut lab = Lab::build(DEVICES, &[443, 22, 8080])?;
    let cfg = lab.write_config("xdp", POLICY)?;
    println!(
        "==> starting iotfence (XDP on iot0); policy:\n{}",
        POLICY.trim_start_matches('\n')
    );
    lab.start_daemon(&cfg)?;
    let t = Duration::from_millis(1500);
    let tries: &[(&str, &str, u16, &str)] = &[
        ("gateway-1", SERVER_A, 443, "its vendor cloud, HTTPS"),
        ("gateway-1", SERVER_A, 22, "SSH to the same host"),
        (
            "gateway-1",
            SERVER_B,
            443,
            "HTTPS to a host outside its allowlist",
        ),
        (
            "sensor-audit",
            SERVER_B,
            8080,
            "a port its profile does not list (audit mode)",
        ),
        (
            "compromised",
            SERVER_B,
            8080,
            "an unknown device reaching out to a C2 host",
        ),
        (
            "compromised",
            SERVER_A,
            443,
            "the same device trying the vendor cloud",
        ),
    ];
    println!("==> traffic");
    for (dev, addr, port, what) in tries {
        if INTERRUPTED.load(Ordering::Relaxed) {
            println!("interrupted; cleaning up");
            return Ok(());
        }
        let ok = lab.device(dev).connect(addr, *port, t);
        println!(
            "  {dev:<13} -> {addr}:{port:<5} {:<9} ({what})",
            if ok { "connected" } else { "blocked" }
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    println!("==> what iotfence counted (packets per device, verdict and reason)");
    let names = ["unknown", "gateway-1", "sensor-audit"];
    for (id, name) in names.iter().enumerate() {
        for v in VERDICTS {
            for r in REASONS {
                let n = lab.counter(id as u32, v, r);
                if n > 0 {
                    println!("  {name:<13} {:<8} {:<18} {n}", v.name(), r.name());
                }
            }
        }
    }
    println!("==> violation events (JSON lines on the daemon's stdout)");
    if let Some(d) = &lab.daemon {
        for e in d.events().iter().take(8) {
            println!("  {e}");
        }
    }
    println!("==> done; removing the lab (namespaces, pins)");
    Ok(())
}
