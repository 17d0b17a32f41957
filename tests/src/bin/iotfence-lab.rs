//! The lab demo (`cargo xtask lab`): a router namespace running iotfence on
//! its IoT interface with the shipped vendor policy library, one simulated
//! device per vendor profile plus a "compromised" device, dnsmasq as the
//! site resolver and an "internet" namespace serving every endpoint. Each
//! device reaches what its vendor document requires and tries what it does
//! not; then a summary of what was allowed, what was blocked and why, with
//! the names destinations came from. Everything is removed at the end, also
//! on Ctrl-C. Only documentation addresses are used.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use iotfence::metrics::status::{self, StatusDoc};
use iotfence_tests::{
    dns::query_bytes,
    lab::{DeviceSpec, Lab, SERVER_B},
    observe::{http_get, METRICS},
    vendor_site::{self, run, FORBIDDEN_NAME},
};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Not in the policy: judged by the default profile (DHCP, DNS to the
/// router), like a device someone plugged in, or one that was taken over.
const COMPROMISED: DeviceSpec = DeviceSpec {
    name: "compromised",
    mac: "02:00:5e:10:00:66",
    host: 66,
};
/// Stands in for a hard-coded public resolver (8.8.8.8 in the wild); a
/// documentation address, so the demo never sends traffic anywhere real.
const PUBLIC_RESOLVER: &str = "198.51.100.53";

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

fn main() -> anyhow::Result<()> {
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let keep = std::env::args().any(|a| a == "--keep");
    let mut specs: Vec<DeviceSpec> = vendor_site::DEVICES
        .iter()
        .map(|(_, d)| vendor_site::dev(d.name, d.mac, d.host))
        .collect();
    specs.push(COMPROMISED);
    println!(
        "==> building the lab: router (iot0 192.0.2.1, dnsmasq), {} devices, an internet namespace",
        specs.len()
    );
    let mut lab = Lab::build(&specs, &[])?;
    let site = vendor_site::prepare(&lab)?;
    println!(
        "==> policy: policies/vendors/*.yaml ({} profiles) included by a site file with one device each",
        site.plans.len()
    );
    for p in &site.plans {
        println!(
            "    {:<20} {:<26} {}",
            p.device,
            p.profile,
            if p.audit { "audit" } else { "enforce" }
        );
    }
    println!(
        "    {:<20} {:<26} enforce",
        COMPROMISED.name, "(default: unknown device)"
    );
    println!("==> starting iotfence (XDP on iot0)");
    lab.start_daemon(&site.config)?;

    println!(
        "==> traffic: every device reaches what its vendor requires, then tries what it does not"
    );
    for plan in &site.plans {
        if interrupted() {
            println!("interrupted; cleaning up");
            return Ok(());
        }
        let started = Instant::now();
        let required = run(&lab, plan.device, plan.required.clone());
        let reached = required.iter().filter(|r| r.is_ok()).count();
        println!(
            "  {:<20} reached {reached}/{} required endpoints ({:.1}s)",
            plan.device,
            required.len(),
            started.elapsed().as_secs_f64()
        );
        for e in required.iter().filter_map(|r| r.as_ref().err()).take(3) {
            println!("      FAILED: {e}");
        }
        for (probe, got) in
            plan.forbidden
                .iter()
                .zip(run(&lab, plan.device, plan.forbidden.clone()))
        {
            let what = match (got.is_ok(), plan.audit) {
                (true, true) => "passed, audited",
                (true, false) => "PASSED (unexpected)",
                (false, _) => "blocked",
            };
            println!("      tried {:<58} {what}", probe.what);
        }
    }
    if interrupted() {
        return Ok(());
    }
    println!("==> the compromised device");
    let t = Duration::from_secs(1);
    let dev = lab.device(COMPROMISED.name);
    let resolved = dev.run(|| {
        iotfence_tests::dns::Stub::new(iotfence_tests::lab::ROUTER_IOT_IP)
            .ok()
            .and_then(|mut s| s.resolve(FORBIDDEN_NAME, hickory_proto::rr::RecordType::A))
    })?;
    let c2 = resolved.as_ref().and_then(|a| a.first().copied());
    match c2 {
        Some(addr) => {
            let ok = dev.connect(&addr.to_string(), 443, t);
            println!(
                "  resolved {FORBIDDEN_NAME} -> {addr}, connect tcp/443: {}",
                if ok {
                    "CONNECTED (unexpected)"
                } else {
                    "blocked"
                }
            );
        }
        None => println!("  resolving {FORBIDDEN_NAME} failed: {resolved:?}"),
    }
    let public = dev.run(|| -> std::io::Result<bool> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(SocketAddr::new(PUBLIC_RESOLVER.parse().unwrap(), 53))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.send(&query_bytes(
            0x1f1f,
            "updates.example",
            hickory_proto::rr::RecordType::A,
        ))?;
        let mut buf = [0u8; 512];
        Ok(s.recv(&mut buf).is_ok())
    })??;
    println!(
        "  DNS to a hard-coded public resolver ({PUBLIC_RESOLVER}:53/udp): {}",
        if public {
            "ANSWERED (unexpected)"
        } else {
            "blocked"
        }
    );
    let ok = dev.connect(SERVER_B, 22, t);
    println!(
        "  SSH to {SERVER_B}: {}",
        if ok {
            "CONNECTED (unexpected)"
        } else {
            "blocked"
        }
    );
    std::thread::sleep(Duration::from_millis(300));

    if let Some(plan) = site.plans.iter().find(|p| !p.audit) {
        const SECONDS: u64 = 6;
        println!(
            "==> learn mode: iotfence learn {} --for {SECONDS}s, while it reaches its endpoints again",
            plan.device
        );
        for l in vendor_site::learn::learn(&lab, &site.config, &[plan], SECONDS)? {
            print!("{}", l.stderr);
            println!("    --- {} ---", l.draft.display());
            print!("{}", std::fs::read_to_string(&l.draft)?);
        }
    }

    println!("==> what iotfence saw (iotfence status, from its HTTP endpoint)");
    let (code, body) = http_get(&lab.router, METRICS, "/status")?;
    anyhow::ensure!(code == 200, "/status: HTTP {code}: {body}");
    let doc: StatusDoc = serde_json::from_str(&body)?;
    print!("{}", status::text(&doc));
    println!("\n==> blocked (or audited), and why, per device");
    for d in &doc.devices {
        let mut seen = std::collections::BTreeSet::new();
        for v in doc.recent_violations.iter().filter(|v| v.device == d.name) {
            if seen.insert(v.summary.clone()) {
                println!("  {}", v.summary);
            }
        }
    }
    println!(
        "\n==> metrics: http://{METRICS}/metrics (also /status, /healthz, /readyz) inside network namespace {}",
        lab.router.name
    );
    println!("    dashboards for them: grafana/ (see grafana/README.md)");
    if keep {
        println!(
            "==> --keep: the lab stays up until Ctrl-C; try\n    ip netns exec {} {} status\n    ip netns exec {} curl -s http://{METRICS}/metrics | grep iotfence_\n    {} mud export casambi-cloud-gateway --config {}",
            lab.router.name,
            iotfence_tests::lab::daemon_binary().display(),
            lab.router.name,
            iotfence_tests::lab::daemon_binary().display(),
            site.config.display()
        );
        while !interrupted() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("==> removing the lab (namespaces, pins, dnsmasq, servers)");
    drop(site);
    Ok(())
}
