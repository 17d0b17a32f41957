//! The shipped Grafana dashboard against a real Prometheus (Debian's)
//! scraping the daemon in the lab: after traffic, every panel's expression
//! and every template variable's query returns series, and no expression
//! names a metric the daemon does not export.

use std::{
    collections::BTreeSet,
    path::Path,
    time::{Duration, Instant},
};

use iotfence_tests::{
    observe::{http_get, parse, Prometheus, METRICS},
    scenario,
};

/// Grafana's built-in variables, as Grafana would expand them for a one
/// hour dashboard over a 1 s scrape interval.
fn expand(expr: &str, instance: &str) -> String {
    expr.replace("${instance}", instance)
        .replace("$instance", instance)
        .replace("${device}", ".*")
        .replace("$device", ".*")
        .replace("$__rate_interval", "10s")
        .replace("$__interval", "2s")
        .replace("$__range", "5m")
}

/// Every `expr` of every panel, rows' nested panels included, with the
/// panel title for messages.
fn targets(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
    for p in panels {
        if let Some(nested) = p["panels"].as_array() {
            targets(nested, out);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("?").to_string(), e.into()));
            }
        }
    }
}

/// Metric names an expression references (the `iotfence_` ones).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("iotfence_") {
        let start = i + at;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(expr[start..end].to_string());
        i = end;
    }
    out
}

#[test]
fn every_dashboard_panel_has_data_in_prometheus() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("grafana/dashboards/iotfence.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    targets(dashboard["panels"].as_array().unwrap(), &mut exprs);
    assert!(exprs.len() >= 15, "only {} panel queries", exprs.len());

    let site = scenario::start("xdp", "").unwrap();
    let router = &site.lab.router;
    let rules = repo.join("grafana/alerts.yaml").canonicalize().unwrap();
    let prom = Prometheus::start_with_rules(
        router,
        &site.lab.dir,
        METRICS,
        "127.0.0.1:9090",
        std::slice::from_ref(&rules),
    )
    .unwrap();

    // Traffic over several scrapes, so rates have two samples in range.
    let until = Instant::now() + Duration::from_secs(8);
    let mut rounds = 0;
    while Instant::now() < until && rounds < 20 {
        scenario::traffic(&site).unwrap();
        rounds += 1;
    }
    // Until Prometheus has scraped the last round (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = prom
            .query(router, "iotfence_dns_learned_total > 0")
            .unwrap();
        if !r.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus never saw learning");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));

    // What the daemon exports (histograms by their base name too).
    let (_, text) = http_get(router, METRICS, "/metrics").unwrap();
    let mut exported = BTreeSet::new();
    for s in parse(&text).unwrap() {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = s.name.strip_suffix(suffix) {
                exported.insert(base.to_string());
            }
        }
        exported.insert(s.name);
    }

    let instance = METRICS;
    let mut problems = Vec::new();
    for (title, expr) in &exprs {
        for m in metric_names(expr) {
            if !exported.contains(&m) {
                problems.push(format!("{title}: `{m}` is not exported"));
            }
        }
        if !expr.contains("instance=~\"$instance\"") {
            problems.push(format!("{title}: `{expr}` ignores $instance"));
        }
        // A fleet dashboard keeps instances apart: no sum adds routers up.
        let bare_sum = expr.contains("sum(") || expr.contains("sum (");
        let by_without_instance = expr
            .split("sum by (")
            .skip(1)
            .any(|rest| !rest.split(')').next().unwrap_or("").contains("instance"));
        if bare_sum || by_without_instance {
            problems.push(format!("{title}: `{expr}` sums instances together"));
        }
        match prom.query(router, &expand(expr, instance)) {
            Ok(r) if r.is_empty() => problems.push(format!("{title}: `{expr}` returned no series")),
            Ok(_) => {}
            Err(e) => problems.push(format!("{title}: {e:#}")),
        }
    }
    // Template variables: label_values(METRIC{...}, LABEL) must find values.
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        let q = v["query"]
            .as_str()
            .or_else(|| v["query"]["query"].as_str())
            .unwrap_or_default();
        let Some(inner) = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
        else {
            continue;
        };
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let r = prom
            .query(
                router,
                &format!(
                    "count by ({}) ({})",
                    label.trim(),
                    expand(selector, instance)
                ),
            )
            .unwrap();
        if !r.iter().any(|s| s["metric"][label.trim()].is_string()) {
            problems.push(format!("variable {}: `{q}` finds no values", v["name"]));
        }
    }
    // The alerting rules, loaded by this Prometheus: each evaluates without
    // error against the live scrape and names only exported metrics.
    let (_, body) = http_get(router, &prom.listen, "/api/v1/rules").unwrap();
    let loaded: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut seen = 0;
    for g in loaded["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            seen += 1;
            let name = r["name"].as_str().unwrap_or("?");
            if r["health"] != "ok" {
                problems.push(format!(
                    "alert {name}: health {} {}",
                    r["health"], r["lastError"]
                ));
            }
            let expr = r["query"].as_str().unwrap_or_default();
            for m in metric_names(expr) {
                if !exported.contains(&m) {
                    problems.push(format!("alert {name}: `{m}` is not exported"));
                }
            }
            if let Err(e) = prom.query(router, expr) {
                problems.push(format!("alert {name}: {e:#}"));
            }
        }
    }
    let rule_count = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("- alert:")
        .count();
    if seen != rule_count {
        problems.push(format!(
            "Prometheus loaded {seen} of {rule_count} alerting rules"
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
