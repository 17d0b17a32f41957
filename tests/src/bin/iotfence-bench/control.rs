//! Part 4: control-plane costs (issue 6). Applying and hot-reloading a
//! 10,000-rule policy (in process, step by step, and end to end through the
//! real daemon, idle and under traffic, counting misjudged packets); kernel
//! memory per learned entry and per device, read from the kernel; and
//! `/metrics` scrape time with 1,000 devices. Absolute times are reported,
//! never judged: CI fails only when a packet is misjudged during reloads.

use std::time::Instant;

use crate::veth::Fleet;
use serde_json::{json, Value};

use crate::{guard, save, Opts};

mod inproc;
mod memory;
mod policy;
mod reload;
mod scrape;

/// Fleet devices sending through the reloads (as in part 2).
const FLEET: usize = 200;
/// Devices of the scrape.
const SCRAPE_DEVICES: usize = 1_000;

/// The `q` quantile (0..=1) by rank, of a non-empty sample.
fn pct(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() - 1) as f64 * q).round() as usize]
}

fn summary(v: &[f64]) -> Value {
    json!({"n": v.len(), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99), "max_ms": pct(v, 1.0), "all_ms": v})
}

fn kib(b: f64) -> String {
    format!("{:.1} KiB", b / 1024.0)
}

pub fn run(o: &Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    let (reps, steps, scrapes, larger_learned) = if o.short {
        (5, 10, 50, 524_288)
    } else {
        (20, 30, 200, 1_048_576)
    };
    let fleet = Fleet { devices: FLEET };
    let policies = [policy::big(&fleet, 0), policy::big(&fleet, 1)];
    let rules = policy::rule_count(&policies[0])?;
    anyhow::ensure!(rules == policy::RULES, "the policy has {rules} rules");

    let t = Instant::now();
    let steps_in = inproc::run(&policies, reps)?;
    eprintln!(
        "control: in-process apply {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let rl = reload::run(&fleet, &policies, steps)?;
    eprintln!("control: daemon reloads {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mem = memory::run(&policies[0], steps_in.lpm_entries, larger_learned)?;
    eprintln!("control: memory {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let sc = scrape::run(SCRAPE_DEVICES, scrapes)?;
    eprintln!("control: scrapes {:.1} s", t.elapsed().as_secs_f64());

    let mut md = format!(
        "# Control plane\n\n\
         Policy: {rules} rule entries (items of the profiles' `egress` lists, each one \
         destination, one protocol, its ports) over {} profiles, {} devices; \
         {} LPM entries once folded. Two variants differing in every filler rule's ports \
         alternate.\n\n\
         ## Apply in process (daemon library)\n\n\
         | step | p50 ms | max ms | n |\n|---|---:|---:|---:|\n",
        policy::PROFILES,
        FLEET + policy::PROFILES - 1,
        steps_in.lpm_entries
    );
    let row = |name: &str, v: &[f64]| {
        format!(
            "| {name} | {:.1} | {:.1} | {} |\n",
            pct(v, 0.5),
            pct(v, 1.0),
            v.len()
        )
    };
    md += &row("parse YAML", &steps_in.parse_ms);
    md += &row("compile (validate, fold)", &steps_in.compile_ms);
    md += &row("apply into fresh maps", &[steps_in.first_apply_ms]);
    md += &row(
        "re-apply (reload path: write other generation, flip, clear old)",
        &steps_in.reapply_ms,
    );
    md += &format!(
        "\nThe same policy as a directory of {} files (a file per profile, and the site's \
         devices), read and compiled as the daemon's reload does:\n\n\
         | read + compile | p50 ms | max ms | n |\n|---|---:|---:|---:|\n",
        steps_in.split_files
    );
    md += &row("every file parsed", &steps_in.split_all_ms);
    md += &row(
        "one profile's file changed (only it parsed)",
        &steps_in.split_one_ms,
    );
    md += &format!(
        "\n## Reload in the daemon (SIGHUP to \"policy reloaded\")\n\n\
         Daemon start with the policy (load, verify, apply, attach): {:.0} ms. \
         Each step rewrites the policy file (the daemon's watcher reloads it), \
         then a SIGHUP reload is timed; \"in daemon\" are the times the daemon logs for \
         reading, parsing and compiling, and for writing the maps. Misjudged, over the whole \
         phase: with all traffic allowed, packets dropped; with all forbidden, packets the \
         policy allowed or frames at the sink (the larger). ARP/ND: link housekeeping \
         allowed, never the generator's IPv4 frames.\n\n\
         | traffic | reloads | p50 ms | max ms | in daemon: compile p50 | apply p50 | allowed | dropped | ARP/ND | at sink | misjudged |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        rl.start_ms
    );
    let series = |p: &reload::Phase, f: fn(&reload::Timed) -> f64| -> Vec<f64> {
        p.reloads_timed.iter().map(f).collect()
    };
    for p in &rl.phases {
        let wall = series(p, |t| t.wall);
        md += &format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |\n",
            p.traffic,
            p.reloads,
            pct(&wall, 0.5),
            pct(&wall, 1.0),
            pct(&series(p, |t| t.compile), 0.5),
            pct(&series(p, |t| t.apply), 0.5),
            p.delta.allowed,
            p.delta.dropped,
            p.delta.link,
            p.forwarded,
            p.misjudged
        );
    }
    let l = &mem["learned"];
    let d = &mem["devices"];
    let r = &mem["rules"];
    md += &format!(
        "\n## Kernel memory (bytes_memlock, bpftool)\n\n\
         - whole datapath, default capacities, no policy: {} in {} maps\n\
         - learned map: {:.1} B per entry ({} entries: {}; {}: {}); after {} entries were \
         inserted: {} (preallocated)\n\
         - per device: {:.1} B (10 devices: {}, 1,000: {}; maps that changed: {})\n\
         - per device slot (`max_devices`, slots {} vs {}): {:.0} B preallocated whatever the \
         policy holds, of which the per-CPU counters {:.0} B ({} CPUs); by map: {}\n\
         - rules: {} for {} LPM entries, {:.1} B each (one generation; a reload holds two)\n",
        kib(mem["fixed_total_bytes"].as_f64().unwrap_or(0.0)),
        mem["fixed_maps"].as_array().map_or(0, |a| a.len()),
        l["bytes_per_entry"].as_f64().unwrap_or(0.0),
        l["capacities"][0],
        kib(l["bytes"][0].as_f64().unwrap_or(0.0)),
        l["capacities"][1],
        kib(l["bytes"][1].as_f64().unwrap_or(0.0)),
        l["filled_entries"],
        kib(l["bytes_after_fill"].as_f64().unwrap_or(0.0)),
        d["bytes_per_device"].as_f64().unwrap_or(0.0),
        kib(d["total_bytes_10"].as_f64().unwrap_or(0.0)),
        kib(d["total_bytes_1000"].as_f64().unwrap_or(0.0)),
        d["changed_maps"],
        d["slots"][0],
        d["slots"][1],
        d["slot_bytes"].as_f64().unwrap_or(0.0),
        d["slot_counter_bytes"].as_f64().unwrap_or(0.0),
        d["cpus"],
        d["slot_bytes_by_map"],
        kib(r["egress_bytes"].as_f64().unwrap_or(0.0)),
        r["lpm_entries"],
        r["bytes_per_lpm_entry"].as_f64().unwrap_or(0.0),
    );
    md += "\n| map | type | max entries | bytes |\n|---|---|---:|---:|\n";
    for m in mem["fixed_maps"].as_array().into_iter().flatten() {
        md += &format!(
            "| {} | {} | {} | {} |\n",
            m["map"].as_str().unwrap_or("?"),
            m["type"].as_str().unwrap_or("?"),
            m["max_entries"],
            m["bytes"]
        );
    }
    md += &format!(
        "\n## /metrics with {SCRAPE_DEVICES} devices\n\n\
         Every device sent one allowed and three forbidden packets. {} scrapes: p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; body {} bytes, {} series. In process on the same maps \
         (medians): building the families {:.1} ms, of which map entry counts {:.1} ms (opening \
         the {} pinned maps alone: {:.2} ms) and per-device counters {:.1} ms.\n\nRun took {:.0} s.\n",
        sc.ms.len(),
        pct(&sc.ms, 0.5),
        pct(&sc.ms, 0.99),
        pct(&sc.ms, 1.0),
        sc.body_bytes,
        sc.series,
        sc.families_ms,
        sc.mapstat_ms,
        iotfence_common::consts::map_names::ALL.len(),
        sc.opens_ms,
        sc.counters_ms,
        started.elapsed().as_secs_f64()
    );
    let misjudged: u64 = rl.phases.iter().map(|p| p.misjudged).sum();
    let doc = json!({
        "policy": {"rules": rules, "profiles": policy::PROFILES,
                   "devices": FLEET + policy::PROFILES - 1, "lpm_entries": steps_in.lpm_entries},
        "in_process": {
            "parse": summary(&steps_in.parse_ms),
            "compile": summary(&steps_in.compile_ms),
            "first_apply_ms": steps_in.first_apply_ms,
            "reapply": summary(&steps_in.reapply_ms),
            "split_files": steps_in.split_files,
            "split_read_compile_all": summary(&steps_in.split_all_ms),
            "split_read_compile_one_changed": summary(&steps_in.split_one_ms),
        },
        "daemon": {
            "start_ms": rl.start_ms,
            "phases": rl.phases.iter().map(|p| json!({
                "traffic": p.traffic, "reloads": p.reloads, "seconds": p.seconds,
                "sighup_reload": summary(&series(p, |t| t.wall)),
                "daemon_compile": summary(&series(p, |t| t.compile)),
                "daemon_apply": summary(&series(p, |t| t.apply)),
                "allowed": p.delta.allowed, "dropped": p.delta.dropped,
                "audited": p.delta.audited, "link_allowed": p.delta.link,
                "forwarded": p.forwarded,
                "misjudged": p.misjudged,
            })).collect::<Vec<_>>(),
        },
        "misjudged": misjudged,
        "memory": mem,
        "scrape": {"devices": SCRAPE_DEVICES, "times": summary(&sc.ms),
                   "body_bytes": sc.body_bytes, "series": sc.series,
                   "in_process_ms": {"families": sc.families_ms, "mapstat": sc.mapstat_ms,
                                     "map_opens": sc.opens_ms, "counters": sc.counters_ms}},
    });
    save(o, "control", &md, &doc)?;
    guard(
        o,
        "control_misjudged_max",
        misjudged as f64,
        "control: packets misjudged during reloads",
    )
}
