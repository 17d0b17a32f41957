//! What the daemon shows about itself: Prometheus metrics (`/metrics`),
//! liveness and readiness (`/healthz`, `/readyz`) and the status document
//! `iotfence status` reads (`/status`). Kernel counters are read from the
//! pinned maps at scrape time; the serve loop only publishes its policy view
//! and reload outcomes here.

pub mod http;
mod learn;
pub mod render;
pub mod status;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::SystemTime,
};

use iotfence_common::ViolationKey;

use crate::{
    dns::{names::Names, refused::Refused, stats::DnsStats},
    events::Violation,
    policy::compile::Compiled,
};

/// Recent violations kept for `iotfence status`.
pub const RECENT_VIOLATIONS: usize = 100;

/// One device as the metrics label it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceView {
    pub id: u32,
    pub name: String,
    pub profile: String,
    pub mode: &'static str,
}

/// The daemon's view, published by the serve loop.
#[derive(Default)]
pub struct Status {
    /// Device id 0 ("unknown", the default profile) first.
    pub devices: Vec<DeviceView>,
    pub profiles: usize,
    /// Policies applied since the daemon started (1 = the startup policy).
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Failed reloads by kind (`ReloadFailure` as index).
    pub reloads_failed_by: [u64; ReloadFailure::ALL.len()],
    /// Unix time of the last successful apply (startup included).
    pub last_success: f64,
    /// The last rejected reload's first error, until a reload succeeds.
    pub last_error: Option<String>,
    /// (interface, hook) for every attached program.
    pub attached: Vec<(String, &'static str)>,
    /// Configured interfaces that do not exist now (enforcement is not on
    /// them); re-attached when they appear.
    pub missing: Vec<String>,
    pub recent: VecDeque<Violation>,
    /// Violation lines the events file could not take.
    pub event_write_errors: u64,
    /// The per-port violation counts last exported (see `monotonic`).
    pub violations_seen: BTreeMap<ViolationKey, u64>,
}

/// Counts that never go down between scrapes: the kernel's per-port
/// violation counts are read from two maps while packets move between
/// them (`Counters::violations`), so a read can miss a move; it shows at
/// the next. Keys gone from the kernel (evicted) are forgotten.
pub fn monotonic(
    seen: &mut BTreeMap<ViolationKey, u64>,
    now: impl IntoIterator<Item = (ViolationKey, u64)>,
) -> Vec<(ViolationKey, u64)> {
    let out: Vec<(ViolationKey, u64)> = now
        .into_iter()
        .map(|(k, n)| (k, n.max(seen.get(&k).copied().unwrap_or(0))))
        .collect();
    *seen = out.iter().copied().collect();
    out
}

pub struct Shared {
    pub pin_dir: std::path::PathBuf,
    pub dns: Arc<DnsStats>,
    pub names: Arc<Names>,
    /// The names each device was refused (`not_allowed`).
    pub refused: Arc<Refused>,
    pub started: SystemTime,
    status: Mutex<Status>,
    /// Learn mode's sessions and control (`/learn`), once the serve loop
    /// takes requests.
    pub learn: std::sync::OnceLock<crate::learn::control::Control>,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn mode_name(mode: u8) -> &'static str {
    iotfence_common::Mode::from_u8(mode).map_or("enforce", iotfence_common::Mode::name)
}

impl Shared {
    pub fn new(
        pin_dir: std::path::PathBuf,
        dns: Arc<DnsStats>,
        names: Arc<Names>,
        refused: Arc<Refused>,
    ) -> Self {
        Self {
            pin_dir,
            dns,
            names,
            refused,
            started: SystemTime::now(),
            status: Mutex::new(Status::default()),
            learn: std::sync::OnceLock::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A policy was applied (at start or by a reload).
    pub fn applied(&self, policy: &Compiled) {
        let default = policy.profiles.get(policy.default_profile as usize);
        let mut devices = vec![DeviceView {
            id: 0,
            name: "unknown".into(),
            profile: default.map(|p| p.name.clone()).unwrap_or_default(),
            mode: mode_name(default.map(|p| p.mode).unwrap_or(0)),
        }];
        devices.extend(policy.devices.iter().map(|d| {
            let p = policy.profiles.get(d.profile as usize);
            DeviceView {
                id: d.id,
                name: d.name.clone(),
                profile: p.map(|p| p.name.clone()).unwrap_or_default(),
                mode: mode_name(p.map(|p| p.mode).unwrap_or(0)),
            }
        }));
        let mut s = self.lock();
        if s.generation > 0 {
            s.reloads_ok += 1;
        }
        s.generation += 1;
        s.devices = devices;
        s.profiles = policy.profiles.len();
        s.last_success = unix_now();
        s.last_error = None;
    }

    pub fn reload_failed(&self, kind: ReloadFailure, error: String) {
        let mut s = self.lock();
        s.reloads_failed += 1;
        s.reloads_failed_by[kind as usize] += 1;
        s.last_error = Some(error);
    }

    /// `interface` carries the datapath (again) with `hook`.
    pub fn attached(&self, interface: &str, hook: &'static str) {
        let mut s = self.lock();
        s.attached.retain(|(i, _)| i != interface);
        s.attached.push((interface.to_string(), hook));
        s.missing.retain(|i| i != interface);
    }

    /// `interface` is gone (or could not be attached): not ready.
    pub fn missing(&self, interface: &str) {
        let mut s = self.lock();
        s.attached.retain(|(i, _)| i != interface);
        if !s.missing.iter().any(|i| i == interface) {
            s.missing.push(interface.to_string());
        }
    }

    /// One line for the service manager's status: where it enforces, and
    /// the configured interfaces it waits for.
    pub fn summary(&self) -> String {
        let s = self.lock();
        let on: Vec<&str> = s.attached.iter().map(|(i, _)| i.as_str()).collect();
        let mut line = format!("enforcing on {}", on.join(", "));
        if !s.missing.is_empty() {
            line += &format!("; waiting for {}", s.missing.join(", "));
        }
        line
    }

    /// Ready: programs attached and a policy generation applied.
    pub fn ready(&self) -> bool {
        let s = self.lock();
        s.generation > 0 && !s.attached.is_empty() && s.missing.is_empty()
    }
}

impl crate::events::Record for Shared {
    fn names(&self) -> &Names {
        &self.names
    }

    fn violation(&self, v: Violation) {
        let mut s = self.lock();
        if s.recent.len() == RECENT_VIOLATIONS {
            s.recent.pop_front();
        }
        s.recent.push_back(v);
    }

    fn write_errors(&self, n: u64) {
        self.lock().event_write_errors += n;
    }

    fn observed(&self, e: &iotfence_common::ViolationEvent, v: &Violation) {
        use iotfence_common::consts::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};
        let Some(l) = self.learn.get() else { return };
        let Some(dst) = v.dst.as_deref().and_then(|d| d.parse().ok()) else {
            return;
        };
        let port = match e.proto {
            PROTO_TCP | PROTO_UDP | PROTO_SCTP => e.dport,
            _ => 0,
        };
        l.sessions
            .flow(e.device, dst, e.proto, port, v.domain.as_deref(), e.time_ns);
    }
}

iotfence_common::codes! {
    /// Why a reload left the running policy in force (a metric label).
    pub enum ReloadFailure {
        /// The new policy is invalid (diagnostics with file:line:column).
        Rejected = 0 => "rejected",
        /// It is valid, but writing it into the kernel failed.
        ApplyFailed = 1 => "apply_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ViolationKey {
        ViolationKey {
            device: 1,
            port,
            proto: 6,
            verdict: 1,
        }
    }

    #[test]
    fn violation_counts_never_go_down_and_evicted_keys_are_forgotten() {
        let mut seen = BTreeMap::new();
        assert_eq!(
            monotonic(&mut seen, [(key(1), 5), (key(2), 3)]),
            [(key(1), 5), (key(2), 3)]
        );
        // A read that missed a move out of a cache slot.
        assert_eq!(monotonic(&mut seen, [(key(1), 4)]), [(key(1), 5)]);
        assert_eq!(
            monotonic(&mut seen, [(key(1), 9), (key(2), 1)]),
            [(key(1), 9), (key(2), 1)]
        );
    }
}
