//! The serve loop's part of learn mode: it takes `/learn` requests, starts
//! and ends sessions, and applies the policy as the sessions have it (the
//! daemon is the only writer of the kernel maps). A session ends at its
//! deadline whether or not its client is still there; a daemon that
//! restarts forgets its sessions and applies the configured profiles.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{
    config::Config,
    dns::{self, service::DnsPolicy},
    kernel::load::Datapath,
    learn::{
        control::{Control, Request},
        sessions::{Refusal, Sessions, Start},
        view,
    },
    metrics::Shared,
    policy::compile::Compiled,
};

/// Requests waiting for the loop (an admin's, not a flood's).
const QUEUE: usize = 16;
/// How often finished reports nobody fetched are looked at.
const TIDY: std::time::Duration = std::time::Duration::from_secs(60);
/// How soon a failed apply after a session ended is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Learning {
    pub sessions: Arc<Sessions>,
    /// This daemon, as a draft's `source:` names it.
    daemon: String,
    /// Ending a session could not be applied: tried again at every wake.
    retry: std::cell::Cell<bool>,
    /// Devices whose session ended, their flows to forget once applied.
    ended: std::cell::RefCell<Vec<u32>>,
}

impl Learning {
    /// Writes a fresh control token and opens `/learn`; the loop takes
    /// its requests from the receiver. Without a token (the state
    /// directory refused it) `/learn` stays closed: enforcement comes up
    /// all the same.
    pub fn open(
        cfg: &Config,
        sessions: Arc<Sessions>,
        shared: &Shared,
    ) -> (Self, mpsc::Receiver<Request>) {
        let (tx, requests) = mpsc::channel(QUEUE);
        match crate::learn::token::create(&cfg.state_dir) {
            Ok(token) => {
                let _ = shared.learn.set(Control {
                    sessions: sessions.clone(),
                    token,
                    requests: tx,
                });
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "no control token: learn mode (/learn) is unavailable")
            }
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let daemon = format!("{host} (pin dir {})", cfg.pin_dir.display());
        let retry = std::cell::Cell::new(false);
        (
            Self {
                sessions,
                daemon,
                retry,
                ended: Default::default(),
            },
            requests,
        )
    }

    /// When the loop should call `expire` next.
    pub fn wake_at(&self) -> tokio::time::Instant {
        let now_ns = crate::clock::mono_ns();
        let tidy = tokio::time::Instant::now() + if self.retry.get() { RETRY } else { TIDY };
        match self.sessions.next_deadline() {
            Some(at) => {
                let wait = std::time::Duration::from_nanos(at.saturating_sub(now_ns));
                (tokio::time::Instant::now() + wait).min(tidy)
            }
            None => tidy,
        }
    }
}

/// What the loop holds that learning changes.
pub struct Loop<'a> {
    pub cfg: &'a Config,
    /// The configured policy.
    pub policy: &'a Compiled,
    /// The policy as applied (learning devices moved to stand-ins).
    pub applied: &'a mut Compiled,
    pub dp: &'a mut Datapath,
    pub dns: &'a dns::service::Service,
    pub shared: &'a Shared,
}

impl Loop<'_> {
    /// Applies the policy as the sessions have it now.
    fn apply(&mut self, sessions: &Sessions) -> anyhow::Result<()> {
        let v = view::view(self.policy, &sessions.learning());
        let generation = self.dp.apply(self.cfg, &v)?;
        self.dns.update(DnsPolicy::of(&v));
        self.shared.applied(&v);
        tracing::info!(generation, learning = ?sessions.learning(), "learning: policy applied");
        *self.applied = v;
        Ok(())
    }

    /// After `apply` put `id` back on its profile: the flows it opened while
    /// learned go (else they would ride on until idle).
    fn forget_flows(&mut self, id: u32) {
        match crate::kernel::flows::forget_device(&mut self.dp.maps.flows, id) {
            Ok(n) => tracing::info!(
                device = id,
                flows = n,
                "learning ended: the device's flows forgotten"
            ),
            Err(e) => {
                tracing::warn!(device = id, error = %format!("{e:#}"), "forgetting a learned device's flows failed: they live on until idle")
            }
        }
    }

    /// Sessions whose time is up end: their devices get their profiles back.
    pub fn expire(&mut self, l: &Learning) {
        let before = l.sessions.learning();
        if l.sessions.expire(crate::clock::mono_ns()) {
            let ended: Vec<u32> = before
                .into_iter()
                .filter(|id| !l.sessions.is_learning(*id))
                .collect();
            for id in &ended {
                summary(l, *id);
            }
            l.ended.borrow_mut().extend(ended);
            l.retry.set(true);
        }
        if l.retry.get() {
            match self.apply(&l.sessions) {
                Ok(()) => {
                    l.retry.set(false);
                    for id in l.ended.take() {
                        self.forget_flows(id);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "learning ended but applying the configured profiles failed; retrying in 1 s")
                }
            }
        }
    }

    pub fn handle(&mut self, l: &Learning, req: Request) {
        let now = crate::clock::mono_ns();
        let device = match &req {
            Request::Start { device, .. } | Request::Stop { device, .. } => device.clone(),
        };
        let Some(d) = self.policy.devices.iter().find(|d| d.name == device) else {
            let msg = format!("no device {device} in the policy");
            match req {
                Request::Start { reply, .. } | Request::Stop { reply, .. } => {
                    let _ = reply.send(Err(Refusal::Unknown(msg)));
                }
            }
            return;
        };
        let id = d.id;
        match req {
            Request::Start { seconds, reply, .. } => {
                let profile = self.policy.profile_name(d.profile).to_string();
                let start = Start {
                    id,
                    device: &device,
                    profile: &profile,
                    daemon: &l.daemon,
                    seconds,
                };
                if let Err(r) = l.sessions.start(start, now) {
                    let _ = reply.send(Err(r));
                    return;
                }
                if let Err(e) = self.apply(&l.sessions) {
                    l.sessions.abort(id);
                    let _ = self.apply(&l.sessions);
                    let _ = reply.send(Err(Refusal::Invalid(format!(
                        "applying the learning profile failed: {e:#}"
                    ))));
                    return;
                }
                tracing::info!(device = %device, seconds, "learning started: the device is audited, every flow reported");
                let _ = reply.send(l.sessions.report(id, now).ok_or(Refusal::Unknown(device)));
            }
            Request::Stop { reply, .. } => {
                if l.sessions.stop(id, now) {
                    summary(l, id);
                    match self.apply(&l.sessions) {
                        Ok(()) => self.forget_flows(id),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "applying the configured profiles after learning failed; retrying in 1 s");
                            l.ended.borrow_mut().push(id);
                            l.retry.set(true);
                        }
                    }
                }
                let r = l.sessions.report(id, now);
                let _ =
                    reply.send(r.ok_or_else(|| {
                        Refusal::Unknown(format!("{device} has no learning session"))
                    }));
            }
        }
    }
}

/// One log line per session that ended (its flows are not logged as
/// violations).
fn summary(l: &Learning, id: u32) {
    if let Some(r) = l.sessions.report(id, crate::clock::mono_ns()) {
        tracing::info!(
            device = %r.device,
            ended = %r.state,
            seconds = r.observed_seconds,
            destinations = r.destinations.len(),
            names = r.names.len(),
            "learning ended: the device is back on its profile"
        );
    }
}
