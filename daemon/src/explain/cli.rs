//! `iotfence explain DEVICE DESTINATION`: against the running datapath
//! (the configuration's pinned maps: learned addresses and live flows, the
//! daemon's device ids), or offline against a policy file (`--policy`).

use std::{collections::BTreeMap, net::IpAddr, path::Path, time::Duration};

use anyhow::Context;
use aya::maps::{HashMap as BpfHashMap, MapData};
use iotfence_common::{
    consts::{map_names, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    values::FlowValue,
    FlowKey, LearnedKey, LearnedRules,
};

use super::{parse_destination, Destination, Explainer, Learned, Live, Target};
use crate::{
    clock::mono_ns,
    config::{self, Config},
    dns::table,
    kernel::pins::open_pinned,
    policy::{compile, ids::DeviceIds},
};

pub struct Args<'a> {
    pub device: &'a str,
    pub destination: &'a str,
    pub config: Option<&'a Path>,
    pub policy: Option<&'a Path>,
    pub json: bool,
}

/// Prints the explanation; the exit code (65: a bad policy or question,
/// 71: the running datapath could not be read).
pub fn run(a: Args<'_>) -> i32 {
    match explain(&a) {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(Failure::Usage(e)) => {
            eprintln!("iotfence explain: {e}");
            crate::exit::USAGE
        }
        Err(Failure::Data(e)) => {
            eprintln!("{e}");
            crate::exit::DATA
        }
        Err(Failure::Os(e)) => {
            eprintln!("iotfence explain: {e:#}");
            crate::exit::OS
        }
    }
}

enum Failure {
    Usage(String),
    Data(String),
    Os(anyhow::Error),
}

fn explain(a: &Args<'_>) -> Result<String, Failure> {
    let diags = |d: Vec<crate::diag::Diagnostic>| {
        Failure::Data(
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    };
    let cfg = match (a.config, a.policy) {
        (Some(c), _) => config::load(c).map_err(diags)?,
        (None, Some(p)) => config::standalone(p),
        (None, None) => config::load(Path::new("/etc/iotfence/iotfence.yaml")).map_err(diags)?,
    };
    let offline = a.policy.is_some();
    let mut policy = compile::load_path(a.policy.unwrap_or(&cfg.policy), &cfg).map_err(diags)?;
    let (dest, proto, port) = parse_destination(a.destination).map_err(Failure::Usage)?;
    let live = if offline {
        Live::default()
    } else {
        DeviceIds::load(&cfg.state_dir, cfg.max_devices).apply_known(&mut policy);
        live_state(&cfg, &policy).map_err(Failure::Os)?
    };
    let target = Target::parse(&policy, a.device).map_err(Failure::Usage)?;
    let router = crate::host::router_addresses()
        .unwrap_or_default()
        .into_iter()
        .filter(IpAddr::is_ipv6)
        .collect();
    let ex = Explainer::new(&policy, router, live);
    let source = if offline {
        format!(
            "offline, policy {}",
            a.policy.unwrap_or(&cfg.policy).display()
        )
    } else {
        format!("live, pin directory {}", cfg.pin_dir.display())
    };
    Ok(match dest {
        Destination::Addr(d) => {
            let e = ex.destination(&target, d, proto, port);
            if a.json {
                serde_json::to_string_pretty(&e).unwrap_or_default()
            } else {
                format!("{} ({source})\n{}", e.destination, text(&e))
            }
        }
        Destination::Name(n) => {
            let e = ex.name(&target, &n, proto, port);
            if a.json {
                serde_json::to_string_pretty(&e).unwrap_or_default()
            } else {
                let mut s = format!(
                    "{} {} ({source})\ndevice: {} ({})\n{}\n",
                    e.name, e.service, e.device.name, e.device.why, e.summary
                );
                for p in &e.patterns {
                    s += &format!(
                        "  pattern {} ({}) at {}{}\n",
                        p.covers,
                        p.services,
                        p.location,
                        section(p)
                    );
                }
                for x in &e.addresses {
                    s += &format!("\n{}\n{}", x.destination, text(x));
                }
                s.trim_end().to_string()
            }
        }
    })
}

fn section(c: &super::RuleCite) -> String {
    match (&c.section, &c.comment) {
        (Some(s), Some(k)) => format!(", document section \"{s}\": {k}"),
        (Some(s), None) => format!(", document section \"{s}\""),
        (None, Some(k)) => format!(": {k}"),
        (None, None) => String::new(),
    }
}

/// An explanation for people.
pub fn text(e: &super::Explanation) -> String {
    let mut s = format!(
        "{} -> {}: {} ({})\n",
        e.device.name,
        e.destination,
        e.verdict.to_uppercase(),
        e.reason
    );
    for (i, step) in e.path.iter().enumerate() {
        s += &format!("  {}. {step}\n", i + 1);
    }
    for r in &e.rules {
        s += &format!(
            "  rule: profile {}, {} at {}: {} ({}){}\n",
            r.profile,
            r.kind,
            r.location,
            r.covers,
            r.services,
            section(r)
        );
    }
    s.trim_end().to_string()
}

/// Learned addresses and live flows from the pinned maps, with the names
/// the daemon reports for them (`/status`) when it answers.
fn live_state(cfg: &Config, policy: &compile::Compiled) -> anyhow::Result<Live> {
    let learned_map: BpfHashMap<MapData, LearnedKey, LearnedRules> =
        open_pinned(&cfg.pin_dir, map_names::LEARNED).with_context(|| {
            format!(
                "no running datapath under {} (pass --policy FILE for an offline answer)",
                cfg.pin_dir.display()
            )
        })?;
    let names = names_from_status(cfg, policy);
    let now = mono_ns();
    let mut live = Live::default();
    for item in learned_map.iter() {
        let (k, v) = item?;
        let addr = table::addr_of(&k);
        let rules = v
            .iter()
            .map(|r| {
                (
                    r.rule,
                    r.expires_ns.saturating_sub(now).div_ceil(1_000_000_000),
                )
            })
            .collect();
        live.learned.push(Learned {
            device: k.device,
            addr,
            name: names.get(&(k.device, addr)).cloned(),
            rules,
        });
    }
    let flows: BpfHashMap<MapData, FlowKey, FlowValue> =
        open_pinned(&cfg.pin_dir, map_names::FLOWS)?;
    for item in flows.iter() {
        let (k, v) = item?;
        let idle = match k.proto {
            PROTO_TCP => cfg.idle.tcp,
            PROTO_UDP => cfg.idle.udp,
            PROTO_ICMP | PROTO_ICMPV6 => cfg.idle.icmp,
            _ => cfg.idle.other,
        };
        let age = Duration::from_nanos(now.saturating_sub(v.last_seen_ns));
        if k.kind == iotfence_common::consts::FLOW_KIND_CONN && age < idle {
            let dst = table::addr_of(&LearnedKey {
                device: 0,
                addr: k.dst,
            });
            live.flows.push((v.device, dst, k.dport, k.proto));
        }
    }
    Ok(live)
}

/// (device id, address) -> the name the daemon learned it from, as far as
/// `/status` lists them; `policy` carries the daemon's device ids.
fn names_from_status(cfg: &Config, policy: &compile::Compiled) -> BTreeMap<(u32, IpAddr), String> {
    let mut out = BTreeMap::new();
    let Some(addr) = cfg.metrics_listen else {
        return out;
    };
    let Ok(doc) = crate::metrics::status::fetch(loopback(addr)) else {
        return out;
    };
    for d in doc.devices {
        let id = policy
            .devices
            .iter()
            .find(|x| x.name == d.name)
            .map_or(0, |x| x.id);
        for l in d.learned {
            if let (Ok(a), Some(n)) = (l.address.parse(), l.name) {
                out.insert((id, a), n);
            }
        }
    }
    out
}

/// A wildcard listen address is reached through loopback.
fn loopback(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr.ip() {
        IpAddr::V4(a) if a.is_unspecified() => ([127, 0, 0, 1], addr.port()).into(),
        IpAddr::V6(a) if a.is_unspecified() => (std::net::Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}
