//! Part 2: live throughput on the veth path (`veth/`), for
//! every filter under two traffic mixes, interleaved by round so drifts of
//! the shared host hit every filter alike; medians are reported, and the
//! ratios of iotfence to nftables are checked against the thresholds.

use std::time::Instant;

use crate::veth::{Filter, Fleet, Mix, Sample, Topology};
use serde_json::json;

use crate::{guard, median, save, Opts};

/// Devices sending (192.0.2.10 onwards: the IoT /24 has room for ~240).
const DEVICES: usize = 200;

struct Traffic {
    key: &'static str,
    name: &'static str,
    mix: Mix,
}

pub fn run(o: &Opts) -> anyhow::Result<()> {
    let (rounds, secs) = if o.short { (3, 1.0) } else { (5, 3.0) };
    let started = Instant::now();
    let fleet = Fleet { devices: DEVICES };
    let traffic = [
        Traffic {
            key: "flood",
            name: "all forbidden (a flood)",
            mix: Mix::Flood,
        },
        Traffic {
            key: "mix",
            name: "50/50 allowed and forbidden",
            mix: Mix::Half,
        },
    ];
    let top = Topology::build()?;
    // samples[filter][traffic] over rounds
    let mut samples: Vec<Vec<Vec<Sample>>> =
        vec![vec![Vec::new(); traffic.len()]; Filter::ALL.len()];
    for round in 0..rounds {
        for (fi, filter) in Filter::ALL.iter().enumerate() {
            let _applied = top.apply(*filter, &fleet)?;
            for (ti, t) in traffic.iter().enumerate() {
                let s = top.measure(&fleet, t.mix, secs)?;
                eprintln!(
                    "round {round}: {:<40} {:<5} handled {:>6.3} Mpps, forwarded {:>6.3} Mpps, router CPU {:>3.0} %, {:>5.0} ns/packet",
                    filter.name(),
                    t.key,
                    s.handled_pps / 1e6,
                    s.forwarded_pps / 1e6,
                    s.cpu_busy * 100.0,
                    s.cpu_ns_per_packet
                );
                samples[fi][ti].push(s);
            }
        }
    }

    let med = |fi: usize, ti: usize, f: fn(&Sample) -> f64| {
        median(samples[fi][ti].iter().map(f).collect::<Vec<f64>>())
    };
    let idx = |f: Filter| Filter::ALL.iter().position(|x| *x == f).unwrap();
    let mut md = format!(
        "# Live throughput on a veth path\n\n\
         {DEVICES} devices, 64-byte UDP frames generated in the kernel (XDP live frames, a random device per frame) on \
         one CPU into the router's IoT interface, whose receive work runs on the other CPU. \
         Median of {rounds} rounds of {secs} s; filters interleaved by round.\n\n\
         Of the limit: handled rate over the XDP_DROP-only program's on the same traffic \
         (the most this path delivers to any filter).\n\n\
         | filter | traffic | handled Mpps | of the limit | forwarded Mpps | router CPU | CPU ns/packet |\n\
         |---|---|---:|---:|---:|---:|---:|\n"
    );
    let limit = |ti: usize| med(idx(Filter::XdpDrop), ti, |s| s.handled_pps).max(1.0);
    let mut rows = Vec::new();
    for (fi, filter) in Filter::ALL.iter().enumerate() {
        for (ti, t) in traffic.iter().enumerate() {
            let handled = med(fi, ti, |s| s.handled_pps);
            let of_limit = handled / limit(ti);
            let forwarded = med(fi, ti, |s| s.forwarded_pps);
            let busy = med(fi, ti, |s| s.cpu_busy);
            let ns = med(fi, ti, |s| s.cpu_ns_per_packet);
            md += &format!(
                "| {} | {} | {:.3} | {:.2} | {:.3} | {:.0} % | {:.0} |\n",
                filter.name(),
                t.name,
                handled / 1e6,
                of_limit,
                forwarded / 1e6,
                busy * 100.0,
                ns
            );
            rows.push(json!({
                "filter": filter.key(), "traffic": t.key,
                "handled_pps": handled, "of_xdp_drop": of_limit, "forwarded_pps": forwarded,
                "router_cpu_busy": busy, "cpu_ns_per_packet": ns,
            }));
        }
    }
    let ratio = |a: Filter, b: Filter, ti: usize| {
        med(idx(a), ti, |s| s.handled_pps) / med(idx(b), ti, |s| s.handled_pps).max(1.0)
    };
    let ratios = [
        (
            "flood_xdp_over_reference",
            ratio(Filter::IotfenceXdp, Filter::Reference, 0),
        ),
        (
            "mix_xdp_over_reference",
            ratio(Filter::IotfenceXdp, Filter::Reference, 1),
        ),
        (
            "flood_reference_of_xdp_drop",
            ratio(Filter::Reference, Filter::XdpDrop, 0),
        ),
        (
            "flood_xdp_of_xdp_drop",
            ratio(Filter::IotfenceXdp, Filter::XdpDrop, 0),
        ),
        (
            "flood_nft_netdev_of_xdp_drop",
            ratio(Filter::NftNetdev, Filter::XdpDrop, 0),
        ),
        (
            "flood_xdp_over_nft_netdev",
            ratio(Filter::IotfenceXdp, Filter::NftNetdev, 0),
        ),
        (
            "flood_xdp_over_nft_forward_ct",
            ratio(Filter::IotfenceXdp, Filter::NftForward, 0),
        ),
        (
            "flood_tc_over_nft_netdev",
            ratio(Filter::IotfenceTc, Filter::NftNetdev, 0),
        ),
        (
            "mix_xdp_over_nft_netdev",
            ratio(Filter::IotfenceXdp, Filter::NftNetdev, 1),
        ),
        (
            "mix_xdp_over_nft_forward_ct",
            ratio(Filter::IotfenceXdp, Filter::NftForward, 1),
        ),
    ];
    md += "\nRatios of packets handled per second (same run):\n\n";
    for (k, v) in &ratios {
        md += &format!("- {k}: {v:.2}\n");
    }
    md += &format!("\nRun took {:.0} s.\n", started.elapsed().as_secs_f64());
    let doc = json!({
        "devices": DEVICES, "rounds": rounds, "seconds": secs,
        "results": rows,
        "ratios": ratios.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    save(o, "live", &md, &doc)?;
    let get = |key: &str| {
        ratios
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0.0, |(_, v)| *v)
    };
    guard(
        o,
        "live_flood_xdp_over_reference_min",
        get("flood_xdp_over_reference"),
        "live: iotfence XDP's flood rate over the reference allowlist's",
    )?;
    guard(
        o,
        "live_flood_xdp_over_nft_netdev_min",
        get("flood_xdp_over_nft_netdev"),
        "live: iotfence XDP's flood rate over nftables netdev's",
    )
}
