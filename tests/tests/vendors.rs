//! The vendor policy library in the lab (see `iotfence_tests::vendor_site`):
//! every endpoint a vendor profile allows is reached, and a name, a port
//! and an address it does not allow are dropped and counted (audit
//! profiles: passed and counted as audited).

use iotfence_common::{reason::REASONS, Verdict};
use iotfence_tests::{
    lab::{DeviceSpec, Lab},
    vendor_site::{self, run, Plan, DEVICES, LOOKUP},
};

fn audited(lab: &Lab, id: u32) -> u64 {
    REASONS
        .iter()
        .map(|r| lab.counter(id, Verdict::Audited, *r))
        .sum()
}

/// Every required endpoint is reached without a drop or an audit; each
/// forbidden probe fails and is counted as a drop (enforce) or passes and is
/// counted as audited (audit).
fn check(lab: &Lab, plan: &Plan) -> Vec<String> {
    let tag = format!("{} ({}, id {})", plan.profile, plan.device, plan.id);
    let mut failures = Vec::new();
    let (dropped0, audited0) = (lab.dropped(plan.id), audited(lab, plan.id));
    for r in run(lab, plan.device, plan.required.clone()) {
        if let Err(e) = r {
            failures.push(format!("{tag}: required {e}"));
        }
    }
    let (dropped1, audited1) = (lab.dropped(plan.id), audited(lab, plan.id));
    if dropped1 != dropped0 || audited1 != audited0 {
        failures.push(format!(
            "{tag}: required endpoints caused {} drops and {} audits",
            dropped1 - dropped0,
            audited1 - audited0
        ));
    }
    for p in &plan.forbidden {
        let before = if plan.audit {
            audited(lab, plan.id)
        } else {
            lab.dropped(plan.id)
        };
        let got = run(lab, plan.device, vec![p.clone()]).remove(0);
        let after = if plan.audit {
            audited(lab, plan.id)
        } else {
            lab.dropped(plan.id)
        };
        match (plan.audit, got) {
            (false, Ok(())) => failures.push(format!("{tag}: forbidden {} went through", p.what)),
            (true, Err(e)) => failures.push(format!("{tag}: audit mode blocked {e}")),
            // A failed lookup is not the firewall's refusal.
            (false, Err(e)) if e.starts_with(LOOKUP) => {
                failures.push(format!("{tag}: forbidden {e}"))
            }
            _ => {}
        }
        if after <= before {
            let kind = if plan.audit { "audited" } else { "dropped" };
            failures.push(format!("{tag}: forbidden {} not counted as {kind}", p.what));
        }
    }
    failures
}

#[test]
fn vendor_profiles_reach_their_endpoints_and_nothing_else() {
    let specs: Vec<DeviceSpec> = DEVICES
        .iter()
        .map(|(_, d)| vendor_site::dev(d.name, d.mac, d.host))
        .collect();
    let mut lab = Lab::build(&specs, &[]).unwrap();
    let site = vendor_site::prepare(&lab).unwrap();
    for p in &site.plans {
        eprintln!(
            "{} ({}): {} required, {} forbidden probes",
            p.profile,
            p.device,
            p.required.len(),
            p.forbidden.len()
        );
    }
    for s in &site.skipped {
        eprintln!("not probed: {s}");
    }
    lab.start_daemon(&site.config).unwrap();
    // Devices are independent (own counters, own learned entries): in
    // parallel, so the forbidden probes' timeouts overlap.
    let lab = &lab;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = site
            .plans
            .iter()
            .map(|plan| s.spawn(move || check(lab, plan)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("device checker panicked"))
            .collect()
    });
    let probed: usize = site
        .plans
        .iter()
        .map(|p| p.required.len() + p.forbidden.len())
        .sum();
    assert!(
        failures.is_empty(),
        "{} of {probed} probes failed:\n{}\n--- iotfence ---\n{}",
        failures.len(),
        failures.join("\n"),
        lab.daemon.as_ref().unwrap().log()
    );
}
