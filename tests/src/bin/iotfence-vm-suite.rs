//! What the kernel matrix (`tests/tests/kernels.rs`) runs inside every
//! booted kernel: the datapath fixture table on XDP and on TC ingress and
//! the DNS redirect's rewrites, the lab smoke check and the DNS redirect
//! on both attach modes, and the IoT network on a VLAN sub-interface and
//! behind a VLAN-filtering bridge (which the host's own kernel cannot run:
//! no 802.1Q). One line per check, then
//! `N passed, M failed`; exit 1 on any failure. Runs on any kernel: the
//! host's test suite runs the same checks directly.

use std::{panic, process::ExitCode, time::Instant};

use iotfence_tests::{
    caps,
    fixtures::run::run_table,
    harness::Hook,
    redirect, smoke,
    vlan::{self, BridgeAttach},
};

type Check = (&'static str, fn() -> anyhow::Result<()>);

const CHECKS: &[Check] = &[
    ("fixture table, XDP", || {
        run_table(Hook::Xdp);
        Ok(())
    }),
    ("fixture table, TC ingress", || {
        run_table(Hook::TcIngress);
        Ok(())
    }),
    ("fixture table, DNS redirect", || {
        redirect::datapath::all();
        Ok(())
    }),
    ("lab smoke, attach: xdp", || smoke::run("xdp")),
    ("lab smoke, attach: tc", || smoke::run("tc")),
    ("DNS redirect, attach: xdp", || redirect::lab::run("xdp")),
    ("DNS redirect, attach: tc", || redirect::lab::run("tc")),
    (
        "capabilities: the unit's set works and each one is needed",
        || {
            let exe = std::env::current_exe()?;
            for line in caps::measure(&exe)? {
                println!("  {line}");
            }
            Ok(())
        },
    ),
    ("VLAN sub-interface, attach: xdp", || vlan::run("xdp")),
    ("VLAN sub-interface, attach: tc", || vlan::run("tc")),
    ("VLAN-filtering bridge, br0.20, attach: xdp", || {
        vlan::run_bridge(BridgeAttach::SubInterface("xdp"))
    }),
    ("VLAN-filtering bridge, br0.20, attach: tc", || {
        vlan::run_bridge(BridgeAttach::SubInterface("tc"))
    }),
    ("VLAN-filtering bridge, br0 as a trunk, attach: tc", || {
        vlan::run_bridge(BridgeAttach::Trunk)
    }),
];

fn main() -> ExitCode {
    let only = std::env::args().nth(1);
    if only.as_deref() == Some(caps::CHILD_ARG) {
        let config = std::env::args().nth(2).unwrap_or_default();
        return match caps::child_main(config.as_ref()) {
            Ok(()) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(step) => {
                println!("{step}");
                ExitCode::FAILURE
            }
        };
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, check) in CHECKS {
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        let t = Instant::now();
        let result = match panic::catch_unwind(check) {
            Ok(r) => r,
            Err(p) => Err(anyhow::anyhow!(
                "panicked: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        };
        match result {
            Ok(()) => {
                passed += 1;
                println!("check {name} ... ok ({:.1?})", t.elapsed());
            }
            Err(e) => {
                failed += 1;
                println!("check {name} ... FAILED ({:.1?}): {e:#}", t.elapsed());
            }
        }
    }
    println!("vm-suite: {passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
