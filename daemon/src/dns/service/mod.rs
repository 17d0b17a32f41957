//! The DNS learning thread. It owns the learned map's daemon side: it reads
//! queries and held answers from the `iotf1_dns` ring (in order), learns,
//! writes the map, releases each answer, and keeps the kernel's heartbeat
//! fresh. A thread of its own, so a policy reload or a slow metrics scrape
//! never delays a held answer.

use std::{
    os::fd::AsRawFd,
    path::PathBuf,
    sync::{
        atomic::Ordering::Relaxed,
        mpsc::{self, Receiver, Sender, TryRecvError},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::Context;
use aya::maps::{Array, HashMap as BpfHashMap, MapData, RingBuf};
use iotfence_common::{
    dns::{DnsControl, DNS_FAIL_OPEN, DNS_LEARNING},
    LearnedKey, LearnedRules,
};

use crate::{
    clock::mono_ns,
    config::{Config, DnsSettings},
    dns::{
        inject::Injector,
        learn::Refusal,
        names::Names,
        pending::Pending,
        refused::{Refused, RefusedEvent},
        resent::Released,
        stats::DnsStats,
        table::{Limits, Table, Write},
    },
    kernel::{grants::Grants, maps::DnsMaps},
    learn::sessions::Sessions,
};

/// The kernel holds answers only while the heartbeat is this fresh.
const HEARTBEAT_VALID: Duration = Duration::from_secs(3);
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// How long a query waits for its answer.
const QUERY_LIFETIME: Duration = Duration::from_secs(15);
const MAX_PENDING: usize = 65_536;
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// Refusal events waiting for the main loop.
const REFUSAL_QUEUE: usize = 1024;
/// Answers still in the ring at shutdown are released within this time.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

mod inflight;
mod persist;
mod policy;
mod ring;

pub use policy::DnsPolicy;

enum Command {
    Policy(DnsPolicy),
    Stop,
}

pub struct Service {
    tx: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<DnsStats>,
    /// The name each device last resolved to each address.
    pub names: Arc<Names>,
    /// The names each device was refused (`not_allowed`).
    pub refused: Arc<Refused>,
    /// Learn mode's sessions: every solicited answer to a learning device
    /// is recorded there too.
    pub learning: Arc<Sessions>,
    /// Refusals to report as events (within each device's budget), until
    /// the daemon's main loop takes it.
    pub refusals: Option<tokio::sync::mpsc::Receiver<RefusedEvent>>,
}

struct Engine {
    learned: BpfHashMap<MapData, LearnedKey, LearnedRules>,
    grants: Grants,
    control: Array<MapData, DnsControl>,
    ring: RingBuf<MapData>,
    injector: Injector,
    released: Released,
    pending: Pending,
    table: Table,
    limits: Limits,
    settings: DnsSettings,
    policy: DnsPolicy,
    stats: Arc<DnsStats>,
    names: Arc<Names>,
    refused: Arc<Refused>,
    learning: Arc<Sessions>,
    /// Full (the main loop is behind): the event is dropped, the name
    /// still listed in `refused`.
    refusal_tx: tokio::sync::mpsc::Sender<RefusedEvent>,
    state_file: PathBuf,
    /// Queries in flight, for a successor after a crash.
    journal: inflight::Journal,
    dirty: bool,
    /// When the heartbeat was last written (CLOCK_MONOTONIC ns).
    last_beat: u64,
}

impl Service {
    /// Restores the saved state, reconciles the learned map with it and the
    /// policy, and starts the thread. The heartbeat is written before this
    /// returns, so answers are held from the moment programs are attached.
    /// `trusted_ids`: device ids are those of the last run (see
    /// `DeviceIds::trusted`); else kernel entries no saved credit explains
    /// are dropped, not kept under whoever holds their id now.
    pub fn start(
        cfg: &Config,
        maps: DnsMaps,
        policy: DnsPolicy,
        trusted_ids: bool,
    ) -> anyhow::Result<Self> {
        let stats = Arc::new(DnsStats::default());
        let names = Arc::new(Names::default());
        let learning = Arc::new(Sessions::default());
        let refused = Arc::new(Refused::new(
            cfg.event_interval.as_nanos() as u64,
            cfg.event_burst,
        ));
        let (refusal_tx, refusals) = tokio::sync::mpsc::channel(REFUSAL_QUEUE);
        // The table never outgrows the map it mirrors.
        let capacity = maps.learned_capacity;
        if capacity < cfg.dns.max_entries {
            tracing::warn!(
                configured = cfg.dns.max_entries,
                capacity,
                "the pinned learned map is smaller than dns.max_entries; `iotfence detach` and restart to resize it"
            );
        }
        let mut e = Engine {
            learned: maps.learned,
            grants: maps.grants,
            control: maps.control,
            ring: maps.ring,
            injector: Injector::new(cfg.dns.reinject_mark)
                .context("opening the AF_PACKET socket that releases held answers")?,
            released: Released::new(maps.resent),
            pending: Pending::new(
                MAX_PENDING,
                cfg.dns.max_pending_per_device,
                QUERY_LIFETIME.as_nanos() as u64,
            ),
            table: Table::default(),
            limits: Limits {
                max_addresses_per_name: cfg.dns.max_addresses_per_name,
                max_entries_per_device: cfg.dns.max_entries_per_device,
                max_entries: cfg.dns.max_entries.min(capacity),
            },
            settings: cfg.dns.clone(),
            policy,
            stats: stats.clone(),
            names: names.clone(),
            refused: refused.clone(),
            learning: learning.clone(),
            refusal_tx,
            state_file: cfg.state_dir.join("learned.json"),
            journal: inflight::Journal::new(
                crate::lock::path_for(&cfg.pin_dir).with_extension("pending"),
            ),
            dirty: false,
            last_beat: 0,
        };
        e.restore(trusted_ids)?;
        // Device ids of another run would charge the queries to the wrong
        // devices: then their answers go unlearned instead.
        if trusted_ids {
            let n = e.journal.restore(&mut e.pending, mono_ns());
            if n > 0 {
                tracing::info!(queries = n, journal = %e.journal.path().display(), "queries in flight restored: their answers are learned");
            }
        }
        e.journal.open(&e.pending);
        e.heartbeat(true)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("iotfence-dns".into())
            .spawn(move || e.run(rx))?;
        Ok(Self {
            tx,
            thread: Some(thread),
            stats,
            names,
            refused,
            learning,
            refusals: Some(refusals),
        })
    }

    pub fn update(&self, policy: DnsPolicy) {
        let _ = self.tx.send(Command::Policy(policy));
    }

    /// Releases what is still held, saves the state, stops the heartbeat.
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Engine {
    fn heartbeat(&mut self, alive: bool) -> anyhow::Result<()> {
        let mut flags = 0;
        if self.policy.learning {
            flags |= DNS_LEARNING;
        }
        if self.settings.fail_open {
            flags |= DNS_FAIL_OPEN;
        }
        let alive_until_ns = if alive {
            mono_ns() + HEARTBEAT_VALID.as_nanos() as u64
        } else {
            0
        };
        self.control.set(
            0,
            DnsControl {
                alive_until_ns,
                flags,
                reinject_mark: self.settings.reinject_mark,
            },
            0,
        )?;
        self.stats
            .alive_until_ns
            .store(alive_until_ns, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Refreshes the heartbeat when it is due. Called between frames too:
    /// the heartbeat says "answers are being learned and released", which a
    /// daemon busy with a long ring is doing; one that only beat when the
    /// ring ran empty let a flood of frames stop every device's learning.
    fn beat_if_due(&mut self, now: u64) -> bool {
        if now.saturating_sub(self.last_beat) < HEARTBEAT_EVERY.as_nanos() as u64 {
            return false;
        }
        self.last_beat = now;
        if let Err(e) = self.heartbeat(true) {
            tracing::error!(error = %e, "DNS heartbeat failed");
        }
        true
    }

    fn run(mut self, rx: Receiver<Command>) {
        let fd = self.ring.as_raw_fd();
        self.last_beat = mono_ns();
        let mut last_save = self.last_beat;
        'serve: loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            unsafe { libc::poll(&mut pfd, 1, 100) };
            // Policy changes before the answers that woke the thread: an
            // answer to a query sent after a reload (or after a device's
            // learning ended) is judged by the policy then applied, not by
            // the one before it.
            loop {
                match rx.try_recv() {
                    Ok(Command::Policy(p)) => self.reconcile(p),
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break 'serve,
                    Err(TryRecvError::Empty) => break,
                }
            }
            self.drain();
            let now = mono_ns();
            if self.beat_if_due(now) {
                self.pending.expire(now);
                let w = self.table.expire(now);
                if !w.is_empty() {
                    self.dirty = true;
                }
                self.write(w);
                self.stats.entries.store(self.table.len() as u64, Relaxed);
                self.stats.pending.store(self.pending.len() as u64, Relaxed);
            }
            if now - last_save >= SAVE_EVERY.as_nanos() as u64 {
                last_save = now;
                self.journal.compact(&self.pending);
                if self.dirty {
                    self.save();
                }
            }
        }
        // Stop holding new answers, release those already held, save. No
        // beat while draining now (a beat never falls due from u64::MAX).
        self.last_beat = u64::MAX;
        if let Err(e) = self.heartbeat(false) {
            tracing::error!(error = %e, "DNS heartbeat reset failed");
        }
        let deadline = mono_ns() + DRAIN_GRACE.as_nanos() as u64;
        while self.drain() > 0 && mono_ns() < deadline {}
        self.save();
    }

    fn reconcile(&mut self, policy: DnsPolicy) {
        self.policy = policy;
        let p = &self.policy;
        let w = self.table.reconcile(|d| p.rules(d));
        self.dirty = true;
        self.write(w);
        if let Err(e) = self.heartbeat(true) {
            tracing::error!(error = %e, "DNS heartbeat failed");
        }
    }

    /// Writes `writes` to the learned map; after a new or widened entry,
    /// bumps the grants epoch (the kernel's denials of it are void) before
    /// the caller releases the answer that taught it.
    fn write(&mut self, writes: Vec<Write>) {
        let grants = writes.iter().any(|w| matches!(w, Write::Put(..)));
        for w in writes {
            let r = match &w {
                Write::Put(k, v) => self.learned.insert(k, v, 0),
                // Already gone (the kernel reports ENOENT, not KeyNotFound).
                Write::Delete(k) => match self.learned.remove(k) {
                    Err(aya::maps::MapError::SyscallError(e))
                        if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
                    {
                        Ok(())
                    }
                    other => other,
                },
            };
            if let Err(e) = r {
                tracing::warn!(error = %e, "learned map write failed");
                if matches!(w, Write::Put(..)) {
                    self.stats.refuse(Refusal::MapFull);
                }
            }
        }
        if grants {
            if let Err(e) = self.grants.bump() {
                tracing::warn!(error = %format!("{e:#}"), "bumping the grants epoch failed");
            }
        }
    }

    /// Handles every frame in the ring; returns how many.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        loop {
            let Some(item) = self.ring.next() else { break };
            let bytes: Vec<u8> = item.to_vec();
            drop(item);
            self.handle(&bytes);
            n += 1;
            if n % 64 == 0 {
                self.beat_if_due(mono_ns());
            }
        }
        n
    }
}
