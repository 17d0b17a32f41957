//! The status document behind `/status` and `iotfence status`: per device
//! its counters, learned entries (with the names they came from) and recent
//! violations, plus the policy and DNS learning state.

use std::{collections::BTreeMap, net::IpAddr, sync::atomic::Ordering::Relaxed};

use aya::maps::{HashMap as BpfHashMap, MapData};
use iotfence_common::{consts::map_names, reason::counter_index, LearnedKey, LearnedRules};
use serde::{Deserialize, Serialize};

use super::{render, Shared};
use crate::{
    dns::{learn::Refusal, table},
    events::Violation,
    kernel::counters::Totals,
};

/// Learned entries listed per device (all are counted).
pub const LEARNED_LISTED: usize = 50;

#[derive(Debug, Serialize, Deserialize)]
pub struct StatusDoc {
    pub version: String,
    pub uptime_seconds: u64,
    pub policy: PolicyState,
    pub attached: Vec<Attachment>,
    pub dns: DnsState,
    pub devices: Vec<DeviceState>,
    pub recent_violations: Vec<Violation>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyState {
    pub generation: u64,
    pub devices: usize,
    pub profiles: usize,
    pub last_success_unix: f64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Attachment {
    pub interface: String,
    pub hook: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DnsState {
    pub answers: u64,
    pub learned: u64,
    pub entries: u64,
    pub refused: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceState {
    pub name: String,
    pub profile: String,
    pub mode: String,
    pub allowed: Totals,
    pub dropped: Totals,
    pub audited: Totals,
    /// Learned destinations, soonest expiry last; at most LEARNED_LISTED.
    pub learned: Vec<LearnedState>,
    pub learned_total: usize,
    /// Names the device asked for that its profile does not allow, most
    /// recent first (at most `dns::refused::NAMES_PER_DEVICE`).
    #[serde(default)]
    pub refused_names: Vec<RefusedName>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RefusedName {
    pub name: String,
    pub count: u64,
    pub last_seconds_ago: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LearnedState {
    pub address: String,
    /// The name the device last resolved to this address.
    pub name: Option<String>,
    pub expires_in_seconds: u64,
}

pub fn build(
    shared: &Shared,
    kernel: &crate::kernel::counters::Counters,
) -> anyhow::Result<StatusDoc> {
    let (devices, policy, attached, recent) = {
        let s = shared.lock();
        (
            s.devices.clone(),
            PolicyState {
                generation: s.generation,
                devices: s.devices.len().saturating_sub(1),
                profiles: s.profiles,
                last_success_unix: s.last_success,
                reloads_ok: s.reloads_ok,
                reloads_failed: s.reloads_failed,
                last_error: s.last_error.clone(),
            },
            s.attached.clone(),
            s.recent.iter().cloned().collect::<Vec<_>>(),
        )
    };
    let learned_map: BpfHashMap<MapData, LearnedKey, LearnedRules> =
        crate::kernel::pins::open_pinned(&shared.pin_dir, map_names::LEARNED)?;
    let now = crate::clock::mono_ns();
    let mut learned: BTreeMap<u32, Vec<(IpAddr, u64)>> = BTreeMap::new();
    for item in learned_map.iter() {
        let (k, v) = item?;
        let last = v.iter().map(|r| r.expires_ns).max().unwrap_or(0);
        if last > now {
            learned
                .entry(k.device)
                .or_default()
                .push((table::addr_of(&k), (last - now) / 1_000_000_000));
        }
    }
    let mut out = Vec::new();
    for d in devices {
        // Indexed by verdict (allowed, dropped, audited).
        let mut totals = [Totals::default(); 3];
        if d.id < kernel.devices() {
            for (v, r) in render::slots() {
                let t = kernel.counter_sum(counter_index(d.id, v, r))?;
                totals[v as usize].packets += t.packets;
                totals[v as usize].bytes += t.bytes;
            }
        }
        let mut entries = learned.remove(&d.id).unwrap_or_default();
        entries.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let learned_total = entries.len();
        let [allowed, dropped, audited] = totals;
        out.push(DeviceState {
            learned: entries
                .into_iter()
                .take(LEARNED_LISTED)
                .map(|(a, secs)| LearnedState {
                    address: a.to_string(),
                    name: shared.names.of(d.id, a),
                    expires_in_seconds: secs,
                })
                .collect(),
            learned_total,
            refused_names: shared
                .refused
                .of(d.id)
                .into_iter()
                .map(|s| RefusedName {
                    name: s.name,
                    count: s.count,
                    last_seconds_ago: now.saturating_sub(s.last_ns) / 1_000_000_000,
                })
                .collect(),
            name: d.name,
            profile: d.profile,
            mode: d.mode.to_string(),
            allowed,
            dropped,
            audited,
        });
    }
    let dns = &shared.dns;
    Ok(StatusDoc {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: shared.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        policy,
        attached: attached
            .into_iter()
            .map(|(interface, hook)| Attachment {
                interface,
                hook: hook.into(),
            })
            .collect(),
        dns: DnsState {
            answers: dns.answers.load(Relaxed),
            learned: dns.learned.load(Relaxed),
            entries: dns.entries.load(Relaxed),
            refused: Refusal::ALL
                .iter()
                .map(|r| (r.name().to_string(), dns.refused(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        },
        devices: out,
        recent_violations: recent,
    })
}

/// Human-readable rendering for `iotfence status`.
pub fn text(doc: &StatusDoc) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let p = &doc.policy;
    let _ = writeln!(
        s,
        "iotfence {} up {}s; policy generation {} ({} devices, {} profiles), reloads {} ok / {} failed",
        doc.version, doc.uptime_seconds, p.generation, p.devices, p.profiles, p.reloads_ok, p.reloads_failed
    );
    if let Some(e) = &p.last_error {
        let _ = writeln!(s, "last reload REJECTED (running policy kept): {e}");
    }
    for a in &doc.attached {
        let _ = writeln!(s, "attached: {} ({})", a.interface, a.hook);
    }
    let _ = writeln!(
        s,
        "dns: {} answers, {} learned, {} live entries",
        doc.dns.answers, doc.dns.learned, doc.dns.entries
    );
    let _ = writeln!(
        s,
        "\n{:<24} {:<28} {:<8} {:>10} {:>10} {:>10} {:>8}",
        "DEVICE", "PROFILE", "MODE", "ALLOWED", "DROPPED", "AUDITED", "LEARNED"
    );
    for d in &doc.devices {
        let _ = writeln!(
            s,
            "{:<24} {:<28} {:<8} {:>10} {:>10} {:>10} {:>8}",
            d.name,
            d.profile,
            d.mode,
            d.allowed.packets,
            d.dropped.packets,
            d.audited.packets,
            d.learned_total
        );
        for l in d.learned.iter().take(5) {
            let _ = writeln!(
                s,
                "    learned {} from {} ({}s left)",
                l.address,
                l.name.as_deref().unwrap_or("?"),
                l.expires_in_seconds
            );
        }
        for r in d.refused_names.iter().take(5) {
            let _ = writeln!(
                s,
                "    REFUSED {} (asked {} times, last {}s ago): not in the profile",
                r.name, r.count, r.last_seconds_ago
            );
        }
    }
    if !doc.recent_violations.is_empty() {
        // Repeats (a connection's retransmissions, an audited flow's
        // packets) collapse into one line with a count.
        let mut lines: Vec<(&str, &str, usize)> = Vec::new();
        for v in &doc.recent_violations {
            match lines.last_mut() {
                Some((_, summary, n)) if *summary == v.summary => *n += 1,
                _ => lines.push((&v.time, &v.summary, 1)),
            }
        }
        let _ = writeln!(s, "\nrecent violations (newest last):");
        for (time, summary, n) in lines.iter().rev().take(20).rev() {
            match n {
                1 => {
                    let _ = writeln!(s, "  {time} {summary}");
                }
                n => {
                    let _ = writeln!(s, "  {time} {summary} (x{n})");
                }
            }
        }
    }
    s
}

/// Fetches the status document from a running daemon's HTTP endpoint.
pub fn fetch(addr: std::net::SocketAddr) -> anyhow::Result<StatusDoc> {
    use anyhow::Context;
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(10);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("no iotfence daemon answers on {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "{addr}/status: {}: {}",
            head.lines().next().unwrap_or(""),
            body.trim()
        );
    }
    serde_json::from_str(body).context("parsing the status document")
}
