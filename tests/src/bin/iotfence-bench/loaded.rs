//! Part 3, under load: the answer round trip idle and while part 2's flood
//! (every frame forbidden, 200 devices) hits the router, for every DNS peer.
//! The generator namespace doubles as the querying device (gen0,
//! 192.0.2.254); the router's dnsmasq forwards to an upstream dnsmasq in the
//! router namespace, as in the trials.

use std::{net::IpAddr, time::Instant};

use hickory_proto::rr::RecordType;
use iotfence_common::Mac;
use iotfence_tests::{
    dns::{mac_of, Dnsmasq, Stub},
    lab::ROUTER_IOT_IP,
};
use serde_json::json;

use crate::{
    dns::{percentiles, Peer, NFTSET, NFT_RULESET},
    veth::{Applied, Fleet, Mix, Topology},
    Opts,
};

const CLIENT_IP: &str = "192.0.2.254";

/// Round trips (µs) of one peer, and queries lost (no answer in time).
pub struct Latency {
    pub peer: Peer,
    pub idle_us: Vec<f64>,
    pub idle_lost: usize,
    pub loaded_us: Vec<f64>,
    pub loaded_lost: usize,
    /// Frames iot0's receive ring refused during the loaded queries (before
    /// any filter sees them): where queries are lost under overload.
    pub ring_dropped: u64,
}

fn rx_dropped(top: &Topology) -> anyhow::Result<u64> {
    top.router.link("iot0", true)?["stats64"]["rx"]["dropped"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no rx dropped count for iot0"))
}

/// The fleet's policy plus the querying device, allowed DNS and the
/// vendor's domains.
fn policy(fleet: &Fleet, client_mac: [u8; 6]) -> String {
    fleet.policy_yaml().replacen(
        "profiles:\n",
        "profiles:\n  vendor:\n    use: [dns]\n    egress:\n      - to: [\"*.vendor.example\"]\n        proto: tcp\n        ports: 443\n",
        1,
    ) + &format!(
        "  - name: client\n    mac: {}\n    profile: vendor\n",
        Mac(client_mac)
    )
}

/// `n` queries from the generator namespace, one after another; names
/// `from..from + n` (fresh for the resolver's cache).
fn queries(top: &Topology, from: usize, n: usize) -> anyhow::Result<(Vec<f64>, usize)> {
    top.generator.run(move || {
        let mut stub = Stub::new(ROUTER_IOT_IP).expect("stub resolver");
        // Bounds a lossy run: n x 250 ms at worst.
        stub.timeout = std::time::Duration::from_millis(250);
        let (mut rtt, mut lost) = (Vec::new(), 0);
        for i in from..from + n {
            let t0 = Instant::now();
            match stub.resolve(&format!("q{i}.vendor.example"), RecordType::A) {
                Some(a) if !a.is_empty() => rtt.push(t0.elapsed().as_secs_f64() * 1e6),
                _ => lost += 1,
            }
        }
        (rtt, lost)
    })
}

pub fn run(o: &Opts, peers: &[Peer]) -> anyhow::Result<Vec<Latency>> {
    let n = if o.short { 200 } else { 1_000 };
    let fleet = Fleet { devices: 200 };
    let top = Topology::build()?;
    top.generator
        .ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "gen0"])?;
    let client_mac = mac_of(&top.generator, "gen0")?;
    // For the hosts files and the ruleset.
    let dir = iotfence_tests::privileged::TempDir::new("iotfence-dnsload-")?;
    let hosts: Vec<(String, IpAddr)> = (0..2 * n * peers.len())
        .map(|i| {
            let addr = IpAddr::from([203, 0, 113, 129 + (i % 100) as u8]);
            (format!("q{i}.vendor.example"), addr)
        })
        .collect();
    let _upstream = Dnsmasq::upstream(&top.router, &dir.0, &hosts, 300)?;
    let mut out = Vec::new();
    let mut next = 0;
    for &peer in peers {
        let mut extra = Vec::new();
        let _filter = match peer {
            Peer::None => Applied::Nothing,
            Peer::Iotfence => top.apply_iotfence(
                "xdp",
                &policy(&fleet, client_mac),
                &format!(
                    "resolvers: [{ROUTER_IOT_IP}]\n{}",
                    iotfence_tests::trials::UNLIMITED_QUERIES
                ),
            )?,
            Peer::Nftset => {
                let file = dir.0.join("ruleset.nft");
                std::fs::write(&file, NFT_RULESET)?;
                top.router.exec(&["nft", "-f", file.to_str().unwrap()])?;
                extra.push(NFTSET.to_string());
                Applied::Nft {
                    ns: top.router.name.clone(),
                    family: "inet",
                }
            }
        };
        let _resolver = Dnsmasq::forwarder(&top.router, &extra)?;
        let (idle_us, idle_lost) = queries(&top, next, n)?;
        next += n;
        let ring0 = rx_dropped(&top)?;
        let load = top.load(&fleet, Mix::Flood)?;
        let loaded = queries(&top, next, n);
        load.stop()?;
        let ring_dropped = rx_dropped(&top)? - ring0;
        next += n;
        let (loaded_us, loaded_lost) = loaded?;
        eprintln!(
            "dns under load: {}: idle p50 {:.0} µs ({idle_lost} lost), loaded p50 {:.0} µs ({loaded_lost} lost)",
            peer.name(),
            percentiles(&idle_us).0,
            percentiles(&loaded_us).0
        );
        out.push(Latency {
            peer,
            idle_us,
            idle_lost,
            loaded_us,
            loaded_lost,
            ring_dropped,
        });
    }
    Ok(out)
}

/// The Markdown table and JSON of `run`'s result.
pub fn report(r: &[Latency]) -> (String, serde_json::Value) {
    let mut md = String::from(
        "\n## Answer round trip idle and under part 2's flood\n\n\
         Sequential A queries from the generator namespace (192.0.2.254) while, \
         under load, it floods iot0 with forbidden frames from 200 devices \
         (XDP live frames, CPU 0). Lost: no answer within 250 ms. Ring drops: \
         frames iot0's receive ring refused meanwhile (the offered load is \
         far above what the router takes; queries die there too, before any \
         filter).\n\n\
         | peer | idle p50 µs | p99 µs | max µs | lost | loaded p50 µs | p99 µs | max µs | lost | ring drops |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut doc = Vec::new();
    for l in r {
        let (a, b, c) = percentiles(&l.idle_us);
        let (d, e, f) = percentiles(&l.loaded_us);
        md += &format!(
            "| {} | {a:.0} | {b:.0} | {c:.0} | {} | {d:.0} | {e:.0} | {f:.0} | {} | {} |\n",
            l.peer.name(),
            l.idle_lost,
            l.loaded_lost,
            l.ring_dropped
        );
        doc.push(json!({
            "peer": l.peer.key(),
            "idle": {"p50_us": a, "p99_us": b, "max_us": c, "lost": l.idle_lost},
            "loaded": {"p50_us": d, "p99_us": e, "max_us": f, "lost": l.loaded_lost, "ring_dropped": l.ring_dropped},
        }));
    }
    (md, json!(doc))
}
