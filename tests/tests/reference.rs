//! The benchmark's reference allowlist (raw BPF, `iotfence_tests::reference`)
//! against its userspace model on every fixture: it must really parse and
//! look up what it claims, or the datapath gate compares against nothing.

use std::collections::HashSet;

use iotfence_common::Verdict;
use iotfence_tests::{
    fixtures::{self, Step},
    floor::{XDP_DROP, XDP_PASS},
    reference::{keys, Reference},
};

#[test]
fn reference_allowlist_matches_its_model_on_every_fixture() {
    let r = Reference::load().expect("loading the reference program");
    // Every allowed device gets every allowed rule (one profile).
    let (mut devices, mut rules) = (HashSet::new(), HashSet::new());
    let mut frames = Vec::new();
    for step in fixtures::table() {
        if let Step::Judge { packet, expect, .. } = step {
            if expect.verdict == Verdict::Allowed {
                r.allow(&packet).unwrap();
                if let Some((d, k)) = keys(&packet) {
                    devices.insert(d);
                    rules.insert(k);
                }
            }
            frames.push(packet);
        }
    }
    let (mut passed, mut dropped) = (0, 0);
    for f in &frames {
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        let ip = ethertype == 0x0800 || ethertype == 0x86dd;
        let want = match keys(f) {
            Some((d, k)) if devices.contains(&d) && rules.contains(&k) => XDP_PASS,
            Some(_) => XDP_DROP,
            // Not IP (or tagged): passes; IP too short to parse: drops.
            None if !ip => XDP_PASS,
            None => XDP_DROP,
        };
        let (got, _) = r.time(f, 1).unwrap();
        assert_eq!(got, want, "frame {f:02x?}");
        if got == XDP_PASS {
            passed += 1;
        } else {
            dropped += 1;
        }
    }
    // Both outcomes occur, so neither lookup is a constant.
    assert!(
        passed > 10 && dropped > 10,
        "{passed} passed, {dropped} dropped"
    );
}
