//! The userspace model (`iotfence_tests::model`) agrees with the kernel
//! judge: on every step of the fixture table, through both judging hooks,
//! and on every committed input of the `datapath` fuzz corpus.

use std::path::Path;

use iotfence_tests::{
    differential::Differential,
    fixtures::{self, Step},
    harness::Hook,
    privileged::require_root,
};

fn table_through(hook: Hook) {
    require_root();
    let mut d = Differential::bare();
    let mut judged = 0;
    for step in fixtures::table() {
        match step {
            Step::Observe { name, packet } => d
                .observe(&packet)
                .unwrap_or_else(|e| panic!("`{name}`: {e}")),
            Step::Learn {
                device,
                addr,
                rule,
                ttl_secs,
            } => d.learn(device, addr, rule, ttl_secs),
            Step::Judge { xdp_only: true, .. } if hook != Hook::Xdp => {}
            Step::Judge {
                name,
                packet,
                expect,
                ..
            } => {
                let got = d
                    .judge(hook, &packet)
                    .unwrap_or_else(|e| panic!("`{name}`: {e}"))
                    .unwrap_or_else(|| panic!("`{name}`: the kernel refused to run it"));
                // The model agrees with the table's expectations too.
                let want = (d.h.device_id(expect.device), expect.verdict, expect.reason);
                assert_eq!(
                    (got.device, got.verdict, got.reason),
                    want,
                    "`{name}`: the model disagrees with the fixture table"
                );
                judged += 1;
            }
        }
    }
    assert!(judged >= 60, "only {judged} fixtures judged");
}

#[test]
fn model_agrees_on_the_fixture_table_xdp() {
    table_through(Hook::Xdp);
}

#[test]
fn model_agrees_on_the_fixture_table_tc_ingress() {
    table_through(Hook::TcIngress);
}

/// Every committed corpus input, deterministically (the fuzz target runs
/// the same `run_input`).
#[test]
fn model_agrees_on_the_datapath_corpus() {
    require_root();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/datapath");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "{}: only {} inputs",
        dir.display(),
        files.len()
    );
    let mut d = Differential::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        d.run_input(&data)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    assert!(d.tally.ran > files.len() as u64, "{:?}", d.tally);
    eprintln!("{} corpus inputs, {:?}", files.len(), d.tally);
}
