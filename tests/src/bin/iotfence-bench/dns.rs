//! Part 3: DNS learning, against dnsmasq `--nftset` (the peer a router
//! admin would pick: the resolver itself adds answered addresses to an
//! nftables set that a forward chain allows).
//!
//! Resolve-then-connect-at-once trials in the lab (`trials`): a device asks
//! the router's dnsmasq for a fresh name (one never asked before, for an
//! address never allowed before), and connects to the answer the moment it
//! arrives. The router's dnsmasq forwards to an upstream dnsmasq (as a
//! router forwards to its ISP; dnsmasq fills nftsets from forwarded answers
//! only), the same for every peer. Measured per peer: the answer's round
//! trip as the device sees it (what a hold adds shows against the peer
//! without a filter), first packets dropped (must be 0), and the CPU the
//! learning costs (iotfence's DNS thread; dnsmasq for `--nftset`), which
//! gives answers learned per second on one core.
//!
//! The same round trips under the packet load of part 2: `loaded.rs`.

use std::{net::IpAddr, process::Command, time::Instant};

use anyhow::Context;
use iotfence_tests::{
    dns::Dnsmasq,
    lab::{Lab, Netns, Server},
    trials::{self, DEVICE},
};
use serde_json::json;

use crate::{
    guard, loaded, save,
    veth::{ticks_per_second, Applied},
    Opts,
};

/// The same allowance for dnsmasq: answers for vendor.example (and its
/// subdomains) go into these sets, which the forward chain allows.
pub const NFTSET: &str =
    "--nftset=/vendor.example/4#inet#iotfence_bench#allow4,6#inet#iotfence_bench#allow6";

pub const NFT_RULESET: &str = "table inet iotfence_bench {
  set allow4 { type ipv4_addr; }
  set allow6 { type ipv6_addr; }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
    iifname \"iot0\" ip daddr @allow4 tcp dport 443 accept
    iifname \"iot0\" ip6 daddr @allow6 tcp dport 443 accept
    iifname \"iot0\" counter drop
  }
}
";

/// Who learns from DNS on the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// No filter: dnsmasq alone (the round trip without any learning).
    None,
    /// iotfence (XDP) holding each answer until its addresses are learned.
    Iotfence,
    /// dnsmasq `--nftset` and an nftables forward chain with conntrack.
    Nftset,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::None, Peer::Iotfence, Peer::Nftset];

    pub fn name(self) -> &'static str {
        match self {
            Peer::None => "dnsmasq alone (no filter)",
            Peer::Iotfence => "iotfence (XDP, answers held)",
            Peer::Nftset => "dnsmasq --nftset + nft forward/ct",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Peer::None => "none",
            Peer::Iotfence => "iotfence",
            Peer::Nftset => "nftset",
        }
    }
}

/// One peer's trials.
pub struct Trials {
    pub peer: Peer,
    /// Answer round trips seen by the device, µs.
    pub rtt_us: Vec<f64>,
    /// Answer to established connection, µs.
    pub connect_us: Vec<f64>,
    pub failed: Vec<String>,
    /// Packets of the device the filter dropped.
    pub first_packet_drops: u64,
    /// CPU seconds of the learner: iotfence's DNS thread, or the router's
    /// dnsmasq (which does the nftset updates itself).
    pub learner_cpu_s: f64,
}

/// Runs `n` resolve-then-connect trials against `peer` in a fresh lab.
pub fn trials(peer: Peer, n: usize) -> anyhow::Result<Trials> {
    let mut lab = Lab::build(&[DEVICE], &[])?;
    let _server = Server::start_any(&lab.internet, 443)?;
    let hosts: Vec<(String, IpAddr)> = (0..n).map(trials::host).collect();
    let _upstream = Dnsmasq::upstream(&lab.router, &lab.dir, &hosts, 300)?;
    let mut _nft = None;
    let mut extra = Vec::new();
    if peer == Peer::Nftset {
        let file = lab.dir.join("ruleset.nft");
        std::fs::write(&file, NFT_RULESET)?;
        lab.router.exec(&["nft", "-f", file.to_str().unwrap()])?;
        _nft = Some(Applied::Nft {
            ns: lab.router.name.clone(),
            family: "inet",
        });
        extra.push(NFTSET.to_string());
    }
    let resolver = Dnsmasq::forwarder(&lab.router, &extra)?;
    if peer == Peer::Iotfence {
        // Every trial is a new address for the one device: room for all
        // (the default allows 4,096 per device).
        let cfg = lab.write_config_with(
            "xdp",
            trials::POLICY,
            &format!(
                "{}  max_entries_per_device: {n}\n",
                iotfence_tests::trials::UNLIMITED_QUERIES
            ),
        )?;
        lab.start_daemon(&cfg)?;
    }
    let learner = || -> anyhow::Result<u64> {
        match &lab.daemon {
            Some(d) => thread_cpu_ticks(d.pid(), "iotfence-dns"),
            None => process_cpu_ticks(resolver.pid()),
        }
    };
    let cpu0 = learner()?;
    let out = trials::run(lab.device(DEVICE.name), hosts)?;
    let learner_cpu_s = (learner()? - cpu0) as f64 / ticks_per_second();
    let first_packet_drops = match peer {
        Peer::None => 0,
        Peer::Iotfence => lab.dropped(1),
        Peer::Nftset => nft_drop_counter(&lab.router)?,
    };
    Ok(Trials {
        peer,
        rtt_us: out.rtt_us,
        connect_us: out.connect_us,
        failed: out.failed,
        first_packet_drops,
        learner_cpu_s,
    })
}

/// Packets the forward chain's final rule dropped.
pub fn nft_drop_counter(router: &Netns) -> anyhow::Result<u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", &router.name])
        .args([
            "nft",
            "-j",
            "list",
            "chain",
            "inet",
            "iotfence_bench",
            "forward",
        ])
        .output()
        .context("running nft")?;
    anyhow::ensure!(
        out.status.success(),
        "nft list chain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["rule"]["expr"].as_array())
        .flatten()
        .find_map(|e| e["counter"]["packets"].as_u64())
        .context("no counter in the forward chain")
}

/// utime + stime of one thread of `pid`, by name, in clock ticks.
fn thread_cpu_ticks(pid: u32, comm: &str) -> anyhow::Result<u64> {
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = e?.path();
        if std::fs::read_to_string(dir.join("comm"))?.trim() == comm {
            return stat_cpu_ticks(&std::fs::read_to_string(dir.join("stat"))?);
        }
    }
    anyhow::bail!("no thread {comm} in process {pid}")
}

fn process_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// utime + stime from a /proc stat line (fields 14 and 15; the command
/// name, in parentheses, may hold spaces).
fn stat_cpu_ticks(stat: &str) -> anyhow::Result<u64> {
    let rest = &stat[stat.rfind(')').context("stat format")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// (p50, p99, max) of `v`.
pub fn percentiles(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), s[s.len() - 1])
}

/// Part 3: trials for every peer, then the round trips under load.
pub fn run(o: &Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    let n = if o.short { 2_000 } else { 10_000 };
    let mut all = Vec::new();
    for peer in Peer::ALL {
        let t = Instant::now();
        let r = trials(peer, n)?;
        eprintln!(
            "dns: {} trials against {}: {:.1} s, {} failed, {} dropped",
            n,
            peer.name(),
            t.elapsed().as_secs_f64(),
            r.failed.len(),
            r.first_packet_drops
        );
        all.push(r);
    }
    let base = percentiles(&all[0].rtt_us);
    let mut md = format!(
        "# DNS learning (resolve, then connect at once)\n\n\
         {n} trials per peer, each a fresh name for an address never allowed \
         before; the router's dnsmasq forwards to an upstream dnsmasq. Round \
         trip: query sent to answer received, in the device. Added: over \
         dnsmasq alone, percentile by percentile.\n\n\
         | peer | answer p50 µs | p99 µs | max µs | added p50 / p99 µs | connect p50 µs | failed | first packets dropped | learner CPU µs/answer | answers/s per core |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in &all {
        let (p50, p99, max) = percentiles(&r.rtt_us);
        let per_answer = r.learner_cpu_s * 1e6 / r.rtt_us.len().max(1) as f64;
        md += &format!(
            "| {} | {p50:.0} | {p99:.0} | {max:.0} | {:.0} / {:.0} | {:.0} | {} | {} | {per_answer:.1} | {} |\n",
            r.peer.name(),
            p50 - base.0,
            p99 - base.1,
            percentiles(&r.connect_us).0,
            r.failed.len(),
            r.first_packet_drops,
            if r.peer == Peer::None || per_answer == 0.0 {
                "-".to_string()
            } else {
                format!("{:.0}", 1e6 / per_answer)
            }
        );
    }
    md += "\nLearner CPU: iotfence's DNS thread; for the other peers the router's \
           dnsmasq (for dnsmasq alone: resolving only). From /proc, 10 ms ticks.\n";
    let loaded = loaded::run(o, &Peer::ALL)?;
    let (loaded_md, loaded_doc) = loaded::report(&loaded);
    md += &loaded_md;
    md += &format!("\nRun took {:.1} s.\n", started.elapsed().as_secs_f64());
    for r in &all {
        for f in r.failed.iter().take(5) {
            eprintln!("dns: {}: {f}", r.peer.key());
        }
    }
    let doc = json!({
        "trials": n,
        "peers": all.iter().map(|r| {
            let (p50, p99, max) = percentiles(&r.rtt_us);
            json!({
                "peer": r.peer.key(), "rtt_p50_us": p50, "rtt_p99_us": p99, "rtt_max_us": max,
                "connect_p50_us": percentiles(&r.connect_us).0,
                "failed": r.failed.len(), "first_packet_drops": r.first_packet_drops,
                "learner_cpu_s": r.learner_cpu_s,
            })
        }).collect::<Vec<_>>(),
        "loaded": loaded_doc,
    });
    save(o, "dns", &md, &doc)?;
    let ours = &all[1];
    anyhow::ensure!(
        ours.failed.is_empty(),
        "DNS learning: {} of {n} trials failed",
        ours.failed.len()
    );
    guard(
        o,
        "dns_first_packet_drops_max",
        ours.first_packet_drops as f64,
        &format!("dns: first packets dropped in {n} trials"),
    )
}
