//! The `policy` fuzz target's body: any text through the daemon's policy
//! parser and compiler. Nothing may panic; a refusal always names
//! file:line:column inside the text; a compiled policy holds together
//! (indexes in range, rule sets within the map's bounds) and compiles the
//! same way again.

use std::{path::Path, sync::OnceLock};

use iotfence::{
    config::{self, Config},
    dns::service::DnsPolicy,
    policy::compile::{self, Compiled},
};
use iotfence_common::consts::{MAX_DEVICES, MAX_PROFILES, RULES_PER_PREFIX};

use crate::fixtures::CONFIG_EXTRA;

pub const PATH: &str = "/iotfence-fuzz/policy.yaml";

fn cfg() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let text = format!("interfaces: [iot0]\npolicy: policy.yaml\n{CONFIG_EXTRA}");
        config::parse(Path::new("/iotfence-fuzz/config.yaml"), &text).expect("fuzz config")
    })
}

/// Panics on any broken invariant (the fuzzer's failure signal).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match compile::compile(Path::new(PATH), text, cfg()) {
        Err(diags) => {
            assert!(
                diags.iter().any(|d| d.is_error()),
                "refused without an error: {diags:?}"
            );
            // YAML breaks lines at LF, CR LF and a lone CR; a location may
            // point just past the last line (end of input).
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count() as u64 + 1;
            for d in &diags {
                assert_eq!(d.file, PATH, "{d}");
                assert!(d.line >= 1 && d.line <= lines, "line out of the text: {d}");
                assert!(d.column >= 1, "{d}");
                let head = format!("{}:{}:{}: ", d.file, d.line, d.column);
                assert!(d.to_string().starts_with(&head), "{d}");
            }
        }
        Ok(c) => {
            holds_together(&c);
            let again = compile::compile(Path::new(PATH), text, cfg()).expect("compiled once");
            assert!(again == c, "a second compile differs");
            let _ = DnsPolicy::of(&c);
        }
    }
}

fn holds_together(c: &Compiled) {
    let profiles = c.profiles.len();
    assert!((1..=MAX_PROFILES as usize).contains(&profiles));
    assert!((c.default_profile as usize) < profiles);
    let mut ids: Vec<u32> = c.devices.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), c.devices.len(), "device ids repeat");
    for d in &c.devices {
        assert!(d.id >= 1 && d.id < MAX_DEVICES, "device id {}", d.id);
        assert!((d.profile as usize) < profiles);
        assert!(
            d.mac.is_some() || !d.nets.is_empty(),
            "{} matches nothing",
            d.name
        );
    }
    for p in &c.profiles {
        for (net, rules) in p.egress.iter().chain(&p.inbound) {
            let n = rules.count as usize;
            assert!((1..=RULES_PER_PREFIX).contains(&n), "{net}: {n} rules");
            for r in &rules.rules[..n] {
                assert!(r.lo <= r.hi, "{net}: {r:?}");
            }
        }
        for d in &p.domains {
            assert!(!d.rules.is_empty(), "{:?} allows nothing", d.pattern);
        }
    }
}
