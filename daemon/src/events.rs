//! Violation events from the ring buffer, rendered as one JSON line each,
//! with the name the device resolved the destination from when known, and
//! written to their sink (stdout, and optionally a file).

use std::{
    io::Write,
    net::{IpAddr, Ipv6Addr},
};

use anyhow::Context;
use aya::maps::{MapData, RingBuf};

use iotfence_common::{
    consts::{protocol_name, PROTO_SCTP, PROTO_TCP, PROTO_UDP},
    Mac, Mode, Reason, Verdict, ViolationEvent,
};
use serde::{Deserialize, Serialize};

use crate::{
    dns::{names::Names, refused::RefusedEvent},
    policy::compile::Compiled,
};

/// A protocol as events and metric labels show it: its name, or the
/// number (see `consts::protocol_name`).
pub fn protocol_label(proto: u8) -> String {
    protocol_name(proto).map_or_else(|| proto.to_string(), str::to_owned)
}

/// `event` of a violation's line.
pub const VIOLATION: &str = "violation";
/// `event` of a DNS refusal's line.
pub const DNS_REFUSED: &str = "dns_refused";

fn violation_kind() -> String {
    VIOLATION.into()
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Violation {
    /// What the line reports: `violation` (a packet), or `dns_refused`
    /// (`DnsRefused`), in the same stream.
    #[serde(default = "violation_kind")]
    pub event: String,
    /// Wall-clock time of the packet (RFC 3339, UTC).
    pub time: String,
    /// CLOCK_MONOTONIC nanoseconds (the kernel's clock for the event).
    pub monotonic_ns: u64,
    pub device: String,
    pub device_id: u32,
    pub profile: String,
    /// `enforce` or `audit`.
    pub mode: String,
    /// `dropped`, or `audited` (passed because the profile audits).
    pub verdict: String,
    pub reason: String,
    pub src_mac: String,
    pub protocol: String,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub src_port: u16,
    pub dst_port: u16,
    /// The name this device last resolved to `dst`, if it did.
    pub domain: Option<String>,
    /// Events of this device suppressed by the rate limit before this one.
    pub suppressed: u32,
    /// One sentence for people: who tried what, and where it came from.
    pub summary: String,
}

fn addr(family: u8, a: [u8; 16]) -> Option<IpAddr> {
    let v6 = Ipv6Addr::from(a);
    match family {
        4 => v6.to_ipv4_mapped().map(IpAddr::V4),
        6 => Some(IpAddr::V6(v6)),
        _ => None,
    }
}

pub fn decode(bytes: &[u8]) -> Option<ViolationEvent> {
    if bytes.len() < std::mem::size_of::<ViolationEvent>() {
        return None;
    }
    // SAFETY: ViolationEvent is plain old data and the buffer is long enough.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

pub fn describe(e: &ViolationEvent, policy: &Compiled, names: &Names) -> Violation {
    let m = e.src_mac;
    let device = policy.device_name(e.device).to_string();
    let profile = policy.profiles.get(e.profile as usize);
    let dst = addr(e.family, e.dst);
    let domain = dst.and_then(|a| names.of(e.device, a));
    let verdict = Verdict::from_u8(e.verdict).map_or("unknown", Verdict::name);
    let protocol = protocol_label(e.proto);
    let has_ports = matches!(e.proto, PROTO_TCP | PROTO_UDP | PROTO_SCTP);
    let target = match (dst, has_ports) {
        (Some(IpAddr::V6(a)), true) => format!("[{a}]:{}/{protocol}", e.dport),
        (Some(a), true) => format!("{a}:{}/{protocol}", e.dport),
        (Some(a), false) => format!("{a} ({protocol})"),
        (None, _) => "a non-IP or malformed frame".to_string(),
    };
    let reason = Reason::from_u8(e.reason)
        .map(Reason::name)
        .unwrap_or("unknown");
    let mut summary = format!("{device} tried {target}");
    match &domain {
        Some(d) => summary += &format!(", which it got from {d}"),
        None if dst.is_some() => summary += ", an address it never resolved",
        None => {}
    }
    summary += &format!(": {verdict} ({reason})");
    Violation {
        event: VIOLATION.into(),
        time: humantime::format_rfc3339_millis(crate::clock::wall_of_mono(e.time_ns)).to_string(),
        monotonic_ns: e.time_ns,
        device,
        device_id: e.device,
        profile: profile.map(|p| p.name.clone()).unwrap_or("unknown".into()),
        mode: Mode::from_u8(profile.map_or(0, |p| p.mode))
            .unwrap_or(Mode::Enforce)
            .name()
            .into(),
        verdict: verdict.into(),
        reason: reason.into(),
        src_mac: Mac(m).to_string(),
        protocol,
        src: addr(e.family, e.src).map(|a| a.to_string()),
        dst: dst.map(|a| a.to_string()),
        src_port: e.sport,
        dst_port: e.dport,
        domain,
        suppressed: e.suppressed,
        summary,
    }
}

/// A device asked for a name its profile does not allow: the answer was
/// delivered and taught nothing (see `dns::refused`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DnsRefused {
    /// Always `dns_refused`.
    pub event: String,
    pub time: String,
    pub monotonic_ns: u64,
    pub device: String,
    pub device_id: u32,
    pub profile: String,
    pub mode: String,
    /// The question's name, as the device asked it.
    pub name: String,
    pub src_mac: Option<String>,
    /// This device's refusals not reported since its last such event.
    pub suppressed: u32,
    pub summary: String,
}

pub fn describe_refusal(r: &RefusedEvent, policy: &Compiled) -> DnsRefused {
    let device = policy.device_name(r.device).to_string();
    let profile = policy
        .devices
        .iter()
        .find(|d| d.id == r.device)
        .map_or(policy.default_profile, |d| d.profile) as usize;
    let profile = policy.profiles.get(profile);
    let profile_name = profile.map(|p| p.name.clone()).unwrap_or("unknown".into());
    DnsRefused {
        event: DNS_REFUSED.into(),
        time: humantime::format_rfc3339_millis(crate::clock::wall_of_mono(r.monotonic_ns))
            .to_string(),
        monotonic_ns: r.monotonic_ns,
        summary: format!(
            "{device} asked for {}, which profile {profile_name} does not allow: a new dependency, or a compromise? (nothing learned)",
            r.name
        ),
        device,
        device_id: r.device,
        profile: profile_name,
        mode: Mode::from_u8(profile.map_or(0, |p| p.mode))
            .unwrap_or(Mode::Enforce)
            .name()
            .into(),
        name: r.name.clone(),
        src_mac: r.mac.map(|m| Mac(m).to_string()),
        suppressed: r.suppressed,
    }
}

/// Writes a DNS refusal as a JSON line; false when the file refused it.
pub fn refused(r: &RefusedEvent, policy: &Compiled, out: &mut EventSink) -> bool {
    match serde_json::to_string(&describe_refusal(r, policy)) {
        Ok(line) => out.write(&line),
        Err(_) => true,
    }
}

/// Where violation events go: stdout (the journal under systemd) and,
/// optionally, appended to a file, reopened on reload for log rotation.
pub struct EventSink {
    path: Option<std::path::PathBuf>,
    file: Option<std::fs::File>,
}

impl EventSink {
    pub fn open(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let mut s = EventSink {
            path: cfg.events_file.clone(),
            file: None,
        };
        s.reopen()?;
        Ok(s)
    }

    pub fn reopen(&mut self) -> anyhow::Result<()> {
        if let Some(p) = &self.path {
            let f = crate::private::append(p).context("opening the events file")?;
            self.file = Some(f);
        }
        Ok(())
    }

    /// Writes one line; false when the file refused it.
    pub fn write(&mut self, line: &str) -> bool {
        let stdout = std::io::stdout();
        let _ = writeln!(stdout.lock(), "{line}");
        match &mut self.file {
            Some(f) => writeln!(f, "{line}").is_ok(),
            None => true,
        }
    }
}

/// Where drained violations are kept besides their sink: the daemon's
/// status (implemented by `metrics::Shared`, a layer above).
pub trait Record {
    /// Which name gave each address, for "got it from" in an event.
    fn names(&self) -> &Names;
    /// One violation, for the recent list in `/status`.
    fn violation(&self, v: Violation);
    /// Lines the events file refused.
    fn write_errors(&self, n: u64);
    /// An event of a learning device (its session aggregates them; they
    /// are not written as violations).
    fn observed(&self, _e: &ViolationEvent, _v: &Violation) {}
}

/// Writes every queued event as a JSON line; returns how many.
pub fn drain(
    ring: &mut RingBuf<MapData>,
    policy: &Compiled,
    record: &impl Record,
    out: &mut EventSink,
) -> usize {
    let mut n = 0;
    let mut failed = 0;
    while let Some(item) = ring.next() {
        if let Some(e) = decode(&item) {
            let v = describe(&e, policy, record.names());
            // A learning device's flows (every one, past the rate limit)
            // are its session's record, not violations to log.
            if policy
                .profiles
                .get(e.profile as usize)
                .is_some_and(|p| p.learning)
            {
                record.observed(&e, &v);
                n += 1;
                continue;
            }
            if let Ok(line) = serde_json::to_string(&v) {
                if !out.write(&line) {
                    failed += 1;
                }
            }
            record.violation(v);
        }
        n += 1;
    }
    if failed > 0 {
        record.write_errors(failed);
    }
    n
}
