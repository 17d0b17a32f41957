//! Reloading the 10,000-rule policy in the real daemon, end to end
//! (SIGHUP to the "policy reloaded" log line), idle and under traffic on
//! the live veth path (`veth`), counting every packet
//! iotfence misjudged meanwhile: under all-allowed traffic any drop, under
//! an all-forbidden flood any packet the policy allowed or any frame at the
//! sink.
//!
//! Each step replaces the policy file with the other variant (the daemon's
//! file watcher reloads it after its 300 ms debounce), waits for that
//! reload, then sends SIGHUP and times the second reload. Timing the
//! watcher's reload from outside would include the debounce; and a SIGHUP
//! racing the watcher's event may be deferred by it. Both reloads happen
//! under the traffic, and both are counted.

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use iotfence::{kernel::counters as stats, metrics::render::slots};
use iotfence_common::{Reason, Verdict};
use iotfence_tests::lab::Daemon;

use crate::veth::{Applied, Fleet, Mix, Topology};

/// Packets by verdict over every device id (unknown devices included).
#[derive(Clone, Copy, Default)]
pub struct Verdicts {
    /// Allowed by the policy (flow, rule, learned, fragment).
    pub allowed: u64,
    /// Allowed as link housekeeping (not IP, neighbour discovery): never
    /// the generator's frames, which are all IPv4 UDP.
    pub link: u64,
    pub dropped: u64,
    pub audited: u64,
}

fn verdicts(pin_dir: &Path) -> anyhow::Result<Verdicts> {
    let counters = stats::Counters::open(pin_dir)?;
    let mut v = Verdicts::default();
    for d in 0..counters.devices() {
        for (verdict, reason) in slots() {
            let n = counters.counter(d, verdict, reason)?.packets;
            match verdict {
                Verdict::Allowed if matches!(reason, Reason::NotIp | Reason::NeighborDiscovery) => {
                    v.link += n
                }
                Verdict::Allowed => v.allowed += n,
                Verdict::Dropped => v.dropped += n,
                Verdict::Audited => v.audited += n,
            }
        }
    }
    Ok(v)
}

fn reloads_logged(d: &Daemon) -> usize {
    d.stderr
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("policy reloaded"))
        .count()
}

/// `key=value` (a number) of the daemon's last "policy reloaded" line.
fn logged_ms(d: &Daemon, key: &str) -> Option<f64> {
    let log = d.stderr.lock().unwrap();
    let line = log.iter().rev().find(|l| l.contains("policy reloaded"))?;
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..].split_whitespace().next()?.parse().ok()
}

/// A SIGHUP reload: wall time, and the daemon's own compile (read, parse,
/// compile) and apply (ids, maps) times, in ms.
#[derive(Clone, Copy)]
pub struct Timed {
    pub wall: f64,
    pub compile: f64,
    pub apply: f64,
}

/// One step (see the module comment).
fn step(top: &Topology, daemon: &Daemon, policy: &str) -> anyhow::Result<Timed> {
    let before = reloads_logged(daemon);
    std::fs::write(top.policy_path(), policy)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads_logged(daemon) == before {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no reload after the policy file changed:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(2));
    }
    let (ok, took) = daemon.reload_polled(Duration::from_millis(1))?;
    anyhow::ensure!(ok, "reload rejected:\n{}", daemon.log());
    Ok(Timed {
        wall: took.as_secs_f64() * 1e3,
        compile: logged_ms(daemon, "compile_ms").unwrap_or(f64::NAN),
        apply: logged_ms(daemon, "apply_ms").unwrap_or(f64::NAN),
    })
}

/// Reloads under one traffic mix (or none).
pub struct Phase {
    pub traffic: &'static str,
    /// SIGHUP reloads.
    pub reloads_timed: Vec<Timed>,
    /// Reloads the daemon logged during the phase (watcher and SIGHUP).
    pub reloads: usize,
    pub seconds: f64,
    /// Verdict deltas over the phase, and frames that reached the sink.
    pub delta: Verdicts,
    pub forwarded: u64,
    pub misjudged: u64,
}

pub struct Result {
    /// Daemon start with the policy (load, verify, apply, attach).
    pub start_ms: f64,
    pub phases: Vec<Phase>,
}

pub fn run(fleet: &Fleet, policies: &[String; 2], steps: usize) -> anyhow::Result<Result> {
    let top = Topology::build()?;
    // The generator's frames are IPv4; without IPv6 neither namespace's
    // own stack sends anything (router solicitations, MLD) that the
    // counters or the sink would see.
    for ns in [&top.generator, &top.router] {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
    }
    let t = Instant::now();
    let applied = top.apply_iotfence("xdp", &policies[0], "")?;
    let start_ms = t.elapsed().as_secs_f64() * 1e3;
    let Applied::Iotfence { daemon, pins } = &applied else {
        anyhow::bail!("apply_iotfence returned no daemon");
    };
    let mut phases = Vec::new();
    let mut variant = 0;
    for (traffic, mix) in [
        ("none", None),
        ("all allowed", Some(Mix::Allowed)),
        ("all forbidden (flood)", Some(Mix::Flood)),
    ] {
        let load = mix.map(|m| top.load(fleet, m)).transpose()?;
        let (v0, fw0, r0) = (
            verdicts(&pins.path)?,
            top.forwarded()?,
            reloads_logged(daemon),
        );
        let t = Instant::now();
        let mut reloads_timed = Vec::new();
        for _ in 0..steps {
            variant ^= 1;
            reloads_timed.push(step(&top, daemon, &policies[variant])?);
        }
        let seconds = t.elapsed().as_secs_f64();
        let (v1, fw1) = (verdicts(&pins.path)?, top.forwarded()?);
        if let Some(l) = load {
            l.stop()?;
        }
        let delta = Verdicts {
            allowed: v1.allowed - v0.allowed,
            link: v1.link - v0.link,
            dropped: v1.dropped - v0.dropped,
            audited: v1.audited - v0.audited,
        };
        let forwarded = fw1 - fw0;
        // A frame wrongly allowed is counted allowed and reaches the sink:
        // the larger of the two, not their sum.
        let misjudged = match mix {
            None => 0,
            Some(Mix::Allowed) => delta.dropped + delta.audited,
            Some(_) => delta.allowed.max(forwarded) + delta.audited,
        };
        if mix.is_some() {
            let judged = delta.allowed + delta.dropped;
            anyhow::ensure!(judged > 0, "no traffic was judged during the reloads");
        }
        phases.push(Phase {
            traffic,
            reloads_timed,
            reloads: reloads_logged(daemon) - r0,
            seconds,
            delta,
            forwarded,
            misjudged,
        });
    }
    Ok(Result { start_ms, phases })
}
