//! Observability end to end: the daemon's `/metrics` after real traffic
//! (values checked against what the traffic did, and promtool's lint), the
//! health endpoints, reload metrics, violation events with the name the
//! destination came from (stdout and the events file), and `iotfence
//! status`.

use std::{os::unix::process::CommandExt, process::Command, time::Duration};

use iotfence_tests::{
    lab::{daemon_binary, enter_ns},
    observe::{http_get, parse, promtool_check, value, Sample, METRICS},
    scenario::{self, CAMERA, EVIL_ADDR, EVIL_NAME, RAW_ADDR, RAW_PORT, SENSOR},
};

fn scrape(site: &scenario::Site) -> (String, Vec<Sample>) {
    let (code, body) = http_get(&site.lab.router, METRICS, "/metrics").unwrap();
    assert_eq!(code, 200, "{body}");
    let samples = parse(&body).unwrap();
    (body, samples)
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[test]
fn metrics_events_and_status_tell_what_devices_did() {
    let site = scenario::start("xdp", "").unwrap();
    let lab = &site.lab;
    assert_eq!(http_get(&lab.router, METRICS, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(&lab.router, METRICS, "/readyz").unwrap().0, 200);
    assert_eq!(http_get(&lab.router, METRICS, "/nope").unwrap().0, 404);

    let out = scenario::traffic(&site).unwrap();
    assert!(out.allowed_connected, "{out:?}");
    assert!(!out.evil_connected && !out.raw_connected, "{out:?}");
    assert!(out.audited_connected, "audit mode passes: {out:?}");

    let (text, m) = scrape(&site);
    promtool_check(&text).unwrap();

    // Datapath counters, labelled by device and profile.
    let sensor = [("device", SENSOR.name), ("profile", "sensor")];
    let learned = [
        &sensor[..],
        &[("verdict", "allowed"), ("reason", "learned")],
    ]
    .concat();
    assert!(get(&m, "iotfence_packets_total", &learned) >= 1.0);
    assert!(get(&m, "iotfence_bytes_total", &learned) >= 60.0);
    let not_allowed = [
        &sensor[..],
        &[("verdict", "dropped"), ("reason", "not_allowed")],
    ]
    .concat();
    // The evil connect and the raw one, each SYN retransmitted within 1 s.
    assert!(get(&m, "iotfence_packets_total", &not_allowed) >= 2.0);
    let audited = [
        ("device", CAMERA.name),
        ("verdict", "audited"),
        ("reason", "not_allowed"),
    ];
    assert!(get(&m, "iotfence_packets_total", &audited) >= 1.0);
    // Violations by protocol and port: 443 (evil) and RAW_PORT, and the
    // camera's audited 443.
    let port = RAW_PORT.to_string();
    for (dev, verdict, port) in [
        (SENSOR.name, "dropped", "443"),
        (SENSOR.name, "dropped", port.as_str()),
        (CAMERA.name, "audited", "443"),
    ] {
        let v = get(
            &m,
            "iotfence_violation_packets_total",
            &[
                ("device", dev),
                ("verdict", verdict),
                ("protocol", "tcp"),
                ("port", port),
            ],
        );
        assert!(v >= 1.0, "{dev} {verdict} {port}: {v}");
    }
    for (dev, profile, mode) in [
        (SENSOR.name, "sensor", "enforce"),
        (CAMERA.name, "camera", "audit"),
        ("unknown", "default", "enforce"),
    ] {
        let labels = [("device", dev), ("profile", profile), ("mode", mode)];
        assert_eq!(get(&m, "iotfence_device_info", &labels), 1.0);
    }
    // No address or domain ever becomes a label value.
    for s in &m {
        for v in s.labels.values() {
            assert!(
                !v.contains("203.0.113") && !v.contains(".example"),
                "unbounded label value in {s:?}"
            );
        }
    }

    // DNS learning: two solicited answers, one learned, one refused.
    assert!(get(&m, "iotfence_dns_answers_held_total", &[]) >= 2.0);
    assert!(get(&m, "iotfence_dns_answers_total", &[]) >= 2.0);
    assert!(get(&m, "iotfence_dns_learned_total", &[]) >= 1.0);
    assert!(
        get(
            &m,
            "iotfence_dns_refused_total",
            &[("reason", "not_allowed")]
        ) >= 1.0
    );
    assert!(get(&m, "iotfence_dns_learned_entries", &[]) >= 1.0);
    let held = get(&m, "iotfence_dns_hold_seconds_count", &[]);
    assert!(held >= 2.0, "{held}");
    assert_eq!(
        get(&m, "iotfence_dns_hold_seconds_bucket", &[("le", "+Inf")]),
        held
    );
    assert_eq!(
        get(
            &m,
            "iotfence_dns_answers_unheld_total",
            &[("reason", "no_daemon")]
        ),
        0.0
    );
    // Map utilization counted in the kernel: the learned address, the
    // flows, and both devices' MACs.
    assert!(get(&m, "iotfence_map_entries", &[("map", "iotf1_learned")]) >= 1.0);
    assert!(get(&m, "iotfence_map_entries", &[("map", "iotf1_flows")]) >= 1.0);
    assert_eq!(
        get(&m, "iotfence_map_entries", &[("map", "iotf1_dev_mac")]),
        2.0
    );
    assert_eq!(
        get(&m, "iotfence_map_max_entries", &[("map", "iotf1_flows")]),
        iotfence_common::consts::FLOW_ENTRIES as f64
    );
    assert_eq!(get(&m, "iotfence_policy_generation", &[]), 1.0);
    assert_eq!(get(&m, "iotfence_policy_devices", &[]), 2.0);
    assert_eq!(
        get(&m, "iotfence_attached_info", &[("interface", "iot0")]),
        1.0
    );
    assert_eq!(get(&m, "iotfence_build_info", &[("map_version", "1")]), 1.0);
    assert!(get(&m, "process_resident_memory_bytes", &[]) > 0.0);

    // Events: the evil connect names the domain it came from, the raw one
    // says it was never resolved; the events file holds the same lines.
    let daemon = lab.daemon.as_ref().unwrap();
    let events = daemon.events();
    let evil = events
        .iter()
        .find(|e| e["dst"] == EVIL_ADDR)
        .unwrap_or_else(|| panic!("no event for {EVIL_ADDR}: {events:#?}"));
    assert_eq!(evil["device"], SENSOR.name);
    assert_eq!(evil["domain"], EVIL_NAME);
    assert_eq!(evil["mode"], "enforce");
    assert_eq!(evil["protocol"], "tcp");
    assert_eq!(evil["dst_port"], 443);
    assert_eq!(
        evil["summary"],
        format!(
            "{} tried {EVIL_ADDR}:443/tcp, which it got from {EVIL_NAME}: dropped (not_allowed)",
            SENSOR.name
        )
    );
    assert!(evil["time"].as_str().unwrap().ends_with('Z'), "{evil}");
    assert_eq!(evil["event"], "violation");
    // Asking for the name outside the profile was an event of its own,
    // before any packet went there.
    let asked = events
        .iter()
        .find(|e| e["event"] == "dns_refused")
        .unwrap_or_else(|| panic!("no dns_refused event: {events:#?}"));
    assert_eq!(asked["device"], SENSOR.name);
    assert_eq!(asked["name"], EVIL_NAME);
    assert_eq!(asked["suppressed"], 0);
    assert!(
        asked["summary"].as_str().unwrap().starts_with(&format!(
            "{} asked for {EVIL_NAME}, which profile",
            SENSOR.name
        )),
        "{asked}"
    );
    let raw = events.iter().find(|e| e["dst"] == RAW_ADDR).unwrap();
    assert_eq!(raw["domain"], serde_json::Value::Null);
    assert!(raw["summary"]
        .as_str()
        .unwrap()
        .contains("an address it never resolved"));
    let file = std::fs::read_to_string(lab.events_file()).unwrap();
    let in_file: Vec<serde_json::Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(in_file.contains(evil), "events file lacks {evil}");

    // `iotfence status`, run in the router namespace like an admin would.
    let ns = std::fs::File::open(lab.router.path()).unwrap();
    let run_status = |format: &str| {
        let ns = ns.try_clone().unwrap();
        let mut cmd = Command::new(daemon_binary());
        cmd.args(["status", "--format", format]);
        unsafe { cmd.pre_exec(move || enter_ns(&ns)) };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let doc: serde_json::Value = serde_json::from_str(&run_status("json")).unwrap();
    let dev = doc["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == SENSOR.name)
        .unwrap();
    assert_eq!(dev["learned"][0]["address"], scenario::ALLOWED_ADDR);
    assert_eq!(dev["learned"][0]["name"], scenario::ALLOWED_NAME);
    assert!(dev["dropped"]["packets"].as_u64().unwrap() >= 2);
    assert_eq!(dev["refused_names"][0]["name"], EVIL_NAME, "{dev}");
    assert!(dev["refused_names"][0]["count"].as_u64().unwrap() >= 1);
    assert!(doc["recent_violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["domain"] == EVIL_NAME));
    let text = run_status("text");
    assert!(
        text.contains(&format!(
            "learned {} from {}",
            scenario::ALLOWED_ADDR,
            scenario::ALLOWED_NAME
        )),
        "{text}"
    );
    assert!(text.contains("which it got from evil.example"), "{text}");
    assert!(text.contains("REFUSED evil.example (asked"), "{text}");

    // Reloads: a broken policy is counted and changes nothing; a good one
    // bumps the generation and the success time.
    let before = get(&m, "iotfence_policy_last_success_timestamp_seconds", &[]);
    std::fs::write(lab.dir.join("policy.yaml"), "profiles: [\n").unwrap();
    assert!(!daemon.reload().unwrap(), "broken policy accepted");
    let (_, m) = scrape(&site);
    // (The write itself may trigger a second, inotify reload.)
    assert!(
        get(
            &m,
            "iotfence_policy_reloads_total",
            &[("result", "rejected")]
        ) >= 1.0
    );
    assert_eq!(
        get(
            &m,
            "iotfence_policy_reloads_total",
            &[("result", "apply_failed")]
        ),
        0.0
    );
    assert_eq!(get(&m, "iotfence_policy_generation", &[]), 1.0);
    let doc: serde_json::Value = serde_json::from_str(&run_status("json")).unwrap();
    assert!(
        doc["policy"]["last_error"]
            .as_str()
            .unwrap()
            .contains("policy.yaml:1"),
        "{doc}"
    );
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(lab.dir.join("policy.yaml"), scenario::POLICY).unwrap();
    assert!(daemon.reload().unwrap(), "good policy rejected");
    let (_, m) = scrape(&site);
    let ok = get(
        &m,
        "iotfence_policy_reloads_total",
        &[("result", "success")],
    );
    assert!(ok >= 1.0);
    assert_eq!(get(&m, "iotfence_policy_generation", &[]), 1.0 + ok);
    assert!(get(&m, "iotfence_policy_last_success_timestamp_seconds", &[]) > before);
    // Counters survive the reload (same device ids).
    assert!(get(&m, "iotfence_packets_total", &learned) >= 1.0);
}
