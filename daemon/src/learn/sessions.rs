//! The devices being learned now, shared by the serve loop (which starts
//! and ends sessions and applies the policy), the DNS thread (answers) and
//! the event drain (flows). A finished session's report is kept a while
//! for the client that asked, then dropped.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Mutex,
    },
    time::SystemTime,
};

use super::{observe::Observations, report::Report};

/// Devices learned at once: each one's profile is swapped while it lasts.
pub const MAX_SESSIONS: usize = 16;
/// The longest session (a day): learning is a look, not a mode to forget.
pub const MAX_SECONDS: u64 = 86_400;
/// How long a finished session's report waits for its client.
pub const KEEP_FINISHED_NS: u64 = 600 * 1_000_000_000;

#[derive(Default)]
pub struct Sessions {
    inner: Mutex<BTreeMap<u32, Session>>,
    /// Active sessions: the DNS thread and the drain skip the lock at 0.
    active: AtomicUsize,
}

struct Session {
    device: String,
    profile: String,
    daemon: String,
    started: SystemTime,
    started_ns: u64,
    seconds: u64,
    until_ns: u64,
    /// `Some(state, at)` once ended: `deadline` or `stopped`.
    ended: Option<(&'static str, u64)>,
    obs: Observations,
}

/// Why a session could not start or be read.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Busy(String),
    Unknown(String),
    Invalid(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Busy(s) | Refusal::Unknown(s) | Refusal::Invalid(s) => f.write_str(s),
        }
    }
}

/// Who starts a session: the device (id and name), the profile it returns
/// to, the daemon's description, and for how long.
pub struct Start<'a> {
    pub id: u32,
    pub device: &'a str,
    pub profile: &'a str,
    pub daemon: &'a str,
    pub seconds: u64,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Session>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts learning a device (replacing a finished session of it).
    pub fn start(&self, s: Start<'_>, now_ns: u64) -> Result<(), Refusal> {
        if s.seconds == 0 || s.seconds > MAX_SECONDS {
            return Err(Refusal::Invalid(format!(
                "learning lasts 1 s to {MAX_SECONDS} s, not {} s",
                s.seconds
            )));
        }
        let mut g = self.lock();
        if g.get(&s.id).is_some_and(|x| x.ended.is_none()) {
            return Err(Refusal::Busy(format!(
                "{} is being learned already",
                s.device
            )));
        }
        if g.values().filter(|x| x.ended.is_none()).count() >= MAX_SESSIONS {
            return Err(Refusal::Busy(format!(
                "{MAX_SESSIONS} devices are being learned already"
            )));
        }
        g.insert(
            s.id,
            Session {
                device: s.device.into(),
                profile: s.profile.into(),
                daemon: s.daemon.into(),
                started: SystemTime::now(),
                started_ns: now_ns,
                seconds: s.seconds,
                until_ns: now_ns + s.seconds * 1_000_000_000,
                ended: None,
                obs: Observations::default(),
            },
        );
        self.active.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Device ids being learned now (their profile is the learning one).
    pub fn learning(&self) -> Vec<u32> {
        if self.active.load(Relaxed) == 0 {
            return Vec::new();
        }
        let g = self.lock();
        g.iter()
            .filter(|(_, s)| s.ended.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn is_learning(&self, id: u32) -> bool {
        self.active.load(Relaxed) != 0 && self.lock().get(&id).is_some_and(|s| s.ended.is_none())
    }

    /// A DNS answer to device `id`.
    pub fn answer(&self, id: u32, name: &str, addr: IpAddr, now_ns: u64) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        if let Some(s) = self.lock().get_mut(&id).filter(|s| s.ended.is_none()) {
            s.obs.answer(name, addr, now_ns);
        }
    }

    /// A flow of device `id` (see `Observations::flow`).
    pub fn flow(
        &self,
        id: u32,
        addr: IpAddr,
        proto: u8,
        port: u16,
        domain: Option<&str>,
        now_ns: u64,
    ) {
        if self.active.load(Relaxed) == 0 {
            return;
        }
        if let Some(s) = self.lock().get_mut(&id).filter(|s| s.ended.is_none()) {
            s.obs.flow(addr, proto, port, domain, now_ns);
        }
    }

    /// Ends every session whose time is up, and forgets reports nobody
    /// fetched in time; true when a device's learning ended (its profile
    /// must be applied again).
    pub fn expire(&self, now_ns: u64) -> bool {
        let mut g = self.lock();
        let mut ended = false;
        for s in g.values_mut().filter(|s| s.ended.is_none()) {
            if now_ns >= s.until_ns {
                s.ended = Some(("deadline", s.until_ns));
                self.active.fetch_sub(1, Relaxed);
                ended = true;
            }
        }
        g.retain(|_, s| s.ended.is_none_or(|(_, at)| now_ns < at + KEEP_FINISHED_NS));
        ended
    }

    /// The nearest deadline of an active session (monotonic ns).
    pub fn next_deadline(&self) -> Option<u64> {
        self.lock()
            .values()
            .filter(|s| s.ended.is_none())
            .map(|s| s.until_ns)
            .min()
    }

    /// Ends device `id`'s session now (the client stopped it), if running;
    /// true when it was.
    pub fn stop(&self, id: u32, now_ns: u64) -> bool {
        let mut g = self.lock();
        match g.get_mut(&id) {
            Some(s) if s.ended.is_none() => {
                s.ended = Some(("stopped", now_ns));
                self.active.fetch_sub(1, Relaxed);
                true
            }
            _ => false,
        }
    }

    /// The id of the device named `device` with a session (running or
    /// ended).
    pub fn find(&self, device: &str) -> Option<u32> {
        self.lock()
            .iter()
            .find(|(_, s)| s.device == device)
            .map(|(id, _)| *id)
    }

    /// Forgets device `id`'s session (its start could not be applied).
    pub fn abort(&self, id: u32) {
        if let Some(s) = self.lock().remove(&id) {
            if s.ended.is_none() {
                self.active.fetch_sub(1, Relaxed);
            }
        }
    }

    /// What device `id`'s session (running or ended) saw so far.
    pub fn report(&self, id: u32, now_ns: u64) -> Option<Report> {
        let g = self.lock();
        let s = g.get(&id)?;
        let (state, end) = s.ended.unwrap_or(("running", now_ns));
        let wall = |ns: u64| {
            let t = crate::clock::wall_of_mono(ns);
            humantime::format_rfc3339_seconds(t).to_string()
        };
        let mut r = s.obs.report(wall);
        r.device = s.device.clone();
        r.profile = s.profile.clone();
        r.daemon = s.daemon.clone();
        r.started = humantime::format_rfc3339_seconds(s.started).to_string();
        r.requested_seconds = s.seconds;
        r.observed_seconds = end
            .saturating_sub(s.started_ns)
            .div_ceil(1_000_000_000)
            .min(s.seconds);
        r.state = state.into();
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn start(s: &Sessions, id: u32, seconds: u64, now: u64) -> Result<(), Refusal> {
        s.start(
            Start {
                id,
                device: "sensor-1",
                profile: "sensor",
                daemon: "router",
                seconds,
            },
            now,
        )
    }

    #[test]
    fn a_session_records_until_its_deadline_and_its_report_is_kept() {
        let s = Sessions::default();
        let addr: IpAddr = "198.51.100.7".parse().unwrap();
        s.flow(1, addr, 6, 443, None, S);
        assert!(
            s.report(1, S).is_none(),
            "nothing recorded outside a session"
        );
        start(&s, 1, 60, 10 * S).unwrap();
        assert_eq!(
            start(&s, 1, 60, 11 * S),
            Err(Refusal::Busy("sensor-1 is being learned already".into()))
        );
        assert!(matches!(start(&s, 2, 0, 11 * S), Err(Refusal::Invalid(_))));
        assert_eq!(s.learning(), [1]);
        s.answer(1, "a.example.com", addr, 11 * S);
        s.flow(1, addr, 6, 443, None, 12 * S);
        s.flow(2, addr, 6, 443, None, 12 * S);
        assert_eq!(s.next_deadline(), Some(70 * S));
        assert!(!s.expire(69 * S));
        assert!(s.expire(70 * S));
        assert!(!s.is_learning(1));
        s.flow(1, addr, 6, 80, None, 71 * S);
        let r = s.report(1, 80 * S).unwrap();
        assert_eq!((r.state.as_str(), r.observed_seconds), ("deadline", 60));
        assert_eq!(
            r.destinations.len(),
            1,
            "nothing recorded after the deadline"
        );
        assert_eq!(r.destinations[0].names, ["a.example.com"]);
        assert!(s.report(1, 69 * S + KEEP_FINISHED_NS).is_some());
        s.expire(70 * S + KEEP_FINISHED_NS);
        assert!(
            s.report(1, 0).is_none(),
            "an unfetched report is dropped in time"
        );
    }

    #[test]
    fn a_stopped_session_says_so() {
        let s = Sessions::default();
        start(&s, 3, 60, 0).unwrap();
        assert!(s.stop(3, 5 * S));
        assert!(!s.stop(3, 6 * S));
        let r = s.report(3, 9 * S).unwrap();
        assert_eq!((r.state.as_str(), r.observed_seconds), ("stopped", 5));
        assert!(s.learning().is_empty());
        // A new session of the same device replaces the finished one.
        start(&s, 3, 10, 10 * S).unwrap();
        assert_eq!(s.report(3, 10 * S).unwrap().state, "running");
    }
}
