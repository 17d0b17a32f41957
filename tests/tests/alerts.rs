//! The shipped Prometheus alerting rules (`grafana/alerts.yaml`): valid for
//! promtool, and each one proven by `grafana/alerts.test.yaml` to fire on
//! the series that should raise it (promtool's rule unit tests, on
//! synthetic series). The dashboard test loads them into a live Prometheus
//! scraping the daemon.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

fn grafana() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(grafana())
        .output()
        .expect("promtool (Debian package prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

/// The `alert:` names of the rule file.
fn alert_names() -> BTreeSet<String> {
    std::fs::read_to_string(grafana().join("alerts.yaml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn the_alert_rules_are_valid_and_each_one_fires_in_its_unit_test() {
    let names = alert_names();
    assert!(names.len() >= 9, "{names:?}");
    let check = promtool(&["check", "rules", "alerts.yaml"]);
    assert!(
        check.contains(&format!("{} rules found", names.len())),
        "{check}"
    );
    let test = promtool(&["test", "rules", "alerts.test.yaml"]);
    assert!(test.contains("SUCCESS"), "{test}");
    // Every alert has a case where it fires (a non-empty exp_alerts).
    let cases = std::fs::read_to_string(grafana().join("alerts.test.yaml")).unwrap();
    let mut firing = BTreeSet::new();
    let mut current = None;
    for l in cases.lines() {
        let l = l.trim();
        if let Some(n) = l.strip_prefix("alertname:") {
            current = Some(n.trim().to_string());
        } else if l.starts_with("- exp_labels:") {
            firing.extend(current.clone());
        }
    }
    let untested: Vec<&String> = names.difference(&firing).collect();
    assert!(
        untested.is_empty(),
        "alerts never shown to fire: {untested:?}"
    );
}
