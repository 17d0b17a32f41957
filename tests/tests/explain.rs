//! `iotfence explain` agrees with the kernel: the whole datapath fixture
//! table replayed through the kernel (BPF_PROG_TEST_RUN, both judging
//! hooks) and through the explainer side by side; on every judged row the
//! explanation gives the kernel's device, verdict and reason (which are
//! the table's), and cites what decided (the rule's file:line, the learned
//! entry, how the device was identified). The differential harness checks
//! the kernel's counters and events against the model on each row too.

use iotfence::explain::{Explainer, Learned, Live};
use iotfence_common::{Reason, Verdict};
use iotfence_tests::{
    differential::Differential,
    fixtures::{self, Step},
    harness::Hook,
    privileged::require_root,
};

fn table_through(hook: Hook) {
    require_root();
    let mut d = Differential::bare();
    let policy = d.h.policy.clone();
    let router = vec![fixtures::ROUTER_IP6.parse().unwrap()];
    let mut ex = Explainer::new(&policy, router, Live::default());
    let mut judged = 0;
    for step in fixtures::table() {
        match step {
            Step::Observe { name, packet } => {
                d.observe(&packet)
                    .unwrap_or_else(|e| panic!("`{name}`: {e}"));
                ex.model_mut().observe(&packet);
            }
            Step::Learn {
                device,
                addr,
                rule,
                ttl_secs,
            } => {
                d.learn(device, addr, rule, ttl_secs);
                ex.learn(Learned {
                    device: d.h.device_id(device),
                    addr,
                    name: Some(format!("{device}.fixture.example")),
                    rules: vec![(rule, ttl_secs.max(0) as u64)],
                });
            }
            Step::Judge { xdp_only: true, .. } if hook != Hook::Xdp => {}
            Step::Judge {
                name,
                packet,
                expect,
                ..
            } => {
                let e = ex.frame(&packet);
                let kernel = d
                    .judge(hook, &packet)
                    .unwrap_or_else(|e| panic!("`{name}`: {e}"))
                    .unwrap_or_else(|| panic!("`{name}`: the kernel refused to run it"));
                ex.model_mut().judge(&packet);
                assert_eq!(
                    (e.device.id, e.verdict.as_str(), e.reason.as_str()),
                    (kernel.device, kernel.verdict.name(), kernel.reason.name()),
                    "`{name}`: explain disagrees with the kernel: {e:#?}"
                );
                // And with the table's expectation.
                let want = (d.h.device_id(expect.device), expect.verdict, expect.reason);
                assert_eq!(
                    (kernel.device, kernel.verdict, kernel.reason),
                    want,
                    "`{name}`: the fixture table expects otherwise"
                );
                cites_what_decided(name, &e, kernel.reason, kernel.verdict);
                judged += 1;
            }
        }
    }
    assert!(judged >= 60, "only {judged} fixtures judged");
}

/// The explanation names what decided: a rule with its place in the
/// policy file, the learned entry, the device's identification.
fn cites_what_decided(name: &str, e: &iotfence::explain::Explanation, r: Reason, v: Verdict) {
    assert!(!e.device.why.is_empty(), "`{name}`: no word on the device");
    assert!(
        e.path.last().unwrap().contains(v.name()),
        "`{name}`: the path ends elsewhere: {:?}",
        e.path
    );
    match r {
        Reason::Rule => assert!(
            e.rules
                .iter()
                .any(|c| c.location.starts_with("policy.yaml:")
                    || c.location.starts_with("<builtin>")),
            "`{name}`: allowed by a rule, but none cited: {e:#?}"
        ),
        Reason::Learned | Reason::Expired => assert!(
            e.learned.iter().any(|l| l.name.is_some()),
            "`{name}`: learned, but no entry cited: {e:#?}"
        ),
        _ => {}
    }
}

#[test]
fn explain_agrees_with_the_kernel_on_the_fixture_table_xdp() {
    table_through(Hook::Xdp);
}

#[test]
fn explain_agrees_with_the_kernel_on_the_fixture_table_tc_ingress() {
    table_through(Hook::TcIngress);
}

/// Against the running daemon in the lab: a name the device resolved is
/// explained as learned (with the name), an address it never resolved as
/// denied, and the name itself by the pattern that names it.
#[test]
fn explain_reads_the_running_daemon() {
    use iotfence_tests::{
        dns::Dnsmasq,
        lab::{daemon_binary, enter_ns, Lab, Server},
        trials::{self, DEVICE, POLICY},
    };
    use std::{os::unix::process::CommandExt, process::Command};

    let mut lab = Lab::build(&[DEVICE], &[]).unwrap();
    let _server = Server::start_any(&lab.internet, 443).unwrap();
    let hosts: Vec<_> = (0..2).map(trials::host).collect();
    let _dns = Dnsmasq::start(&lab.router, &lab.dir, &hosts, &[], 300).unwrap();
    let cfg = lab.write_config("xdp", POLICY).unwrap();
    lab.start_daemon(&cfg).unwrap();
    let out = trials::run(lab.device("dev-1"), hosts[..1].to_vec()).unwrap();
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    let explain = |dest: &str| {
        let ns = std::fs::File::open(lab.router.path()).unwrap();
        let mut cmd = Command::new(daemon_binary());
        cmd.args(["explain", "--config"]).arg(&cfg);
        cmd.args(["--format", "json", "dev-1", dest]);
        unsafe { cmd.pre_exec(move || enter_ns(&ns)) };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "explain {dest}: {out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (name, addr) = &hosts[0];
    let e = explain(&format!("{addr}:443"));
    assert_eq!(
        (&e["verdict"], &e["reason"]),
        (&"allowed".into(), &"learned".into()),
        "{e:#}"
    );
    assert_eq!(e["learned"][0]["name"], name.as_str(), "{e:#}");
    assert!(e["learned"][0]["expires_in_seconds"].as_u64().unwrap() > 0);
    let never = hosts[1].1;
    let e = explain(&format!("{never}:443"));
    assert_eq!(
        (&e["verdict"], &e["reason"]),
        (&"dropped".into(), &"not_allowed".into()),
        "{e:#}"
    );
    let e = explain(&format!("{name}:443"));
    assert_eq!(e["patterns"][0]["covers"], "*.vendor.example", "{e:#}");
    assert_eq!(e["addresses"][0]["reason"], "learned", "{e:#}");
}
