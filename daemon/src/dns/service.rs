//! The DNS learning thread. It owns the learned map's daemon side: it reads
//! queries and held answers from the `iotf1_dns` ring (in order), learns,
//! writes the map, releases each answer, and keeps the kernel's heartbeat
//! fresh. A thread of its own, so a policy reload or a slow metrics scrape
//! never delays a held answer.

use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    path::PathBuf,
    sync::{
        atomic::Ordering::Relaxed,
        mpsc::{self, Receiver, Sender, TryRecvError},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use aya::maps::{Array, HashMap as BpfHashMap, MapData, RingBuf};
use iotfence_common::{
    dns::{DnsControl, DnsFrame, DNS_FAIL_OPEN, DNS_KIND_ANSWER, DNS_KIND_QUERY, DNS_LEARNING},
    LearnedKey, LearnedRules,
};

use super::{
    frame,
    inject::Injector,
    learn::{self, Refusal, Route},
    names::Names,
    pending::{Pending, Querier, QueryKey},
    resent::Released,
    state::{self, Saved, SavedCredit},
    stats::DnsStats,
    table::{Credit, Limits, Table, Write},
};
use crate::{
    clock::mono_ns,
    config::{Config, DnsSettings},
    kernel::maps::DnsMaps,
    policy::{
        compile::{Compiled, DomainRule},
        pattern::Pattern,
    },
};

/// The kernel holds answers only while the heartbeat is this fresh.
const HEARTBEAT_VALID: Duration = Duration::from_secs(3);
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// How long a query waits for its answer.
const QUERY_LIFETIME: Duration = Duration::from_secs(15);
const MAX_PENDING: usize = 65_536;
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// Answers still in the ring at shutdown are released within this time.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What the DNS thread needs of a policy.
#[derive(Clone, Debug, Default)]
pub struct DnsPolicy {
    pub learning: bool,
    /// By device id: name and the domain rules of its profile. Id 0 is every
    /// unknown device (the default profile) and has an empty name.
    pub devices: HashMap<u32, (String, Vec<DomainRule>)>,
}

impl DnsPolicy {
    pub fn of(p: &Compiled) -> Self {
        let mut devices = HashMap::new();
        devices.insert(
            0,
            (
                String::new(),
                p.profiles[p.default_profile as usize].domains.clone(),
            ),
        );
        for d in &p.devices {
            devices.insert(
                d.id,
                (
                    d.name.clone(),
                    p.profiles[d.profile as usize].domains.clone(),
                ),
            );
        }
        Self {
            learning: p.learns(),
            devices,
        }
    }

    fn rules(&self, device: u32) -> Option<&[DomainRule]> {
        self.devices.get(&device).map(|(_, r)| r.as_slice())
    }

    fn id_of(&self, name: &str) -> Option<u32> {
        self.devices
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id)
    }
}

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
}

struct Engine {
    learned: BpfHashMap<MapData, LearnedKey, LearnedRules>,
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
    state_file: PathBuf,
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
            state_file: cfg.state_dir.join("learned.json"),
            dirty: false,
            last_beat: 0,
        };
        e.restore(trusted_ids)?;
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
    fn restore(&mut self, trusted_ids: bool) -> anyhow::Result<()> {
        let now = mono_ns();
        let now_ms = crate::clock::unix_ms(SystemTime::now());
        let mut saved = match state::load(&self.state_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %self.state_file.display(), error = %format!("{e:#}"), "ignoring unreadable DNS state");
                Saved::default()
            }
        };
        let mut restored = 0;
        // No answer could have granted more than max_ttl + grace: a state
        // file claiming longer (edited, corrupt, or a clock that jumped back
        // since) is cut to that.
        let longest_ms = (self.settings.max_ttl + self.settings.grace).as_millis() as u64;
        let mut clamped = 0;
        let elapsed = saved.elapsed(now_ms, now, &state::boot_id());
        if elapsed == state::Elapsed::ClockBehind {
            tracing::warn!(
                saved_ms = saved.saved_ms,
                now_ms,
                "the wall clock is behind the last save (no real-time clock, not synced yet?): restored lifetimes count from the save, as if no time had passed"
            );
        }
        let credits = std::mem::take(&mut saved.credits);
        for c in credits {
            let left_ms = saved.left_ms(&c, now_ms, elapsed);
            if left_ms == 0 {
                continue;
            }
            if left_ms > longest_ms {
                clamped += 1;
            }
            let left_ms = left_ms.min(longest_ms);
            let Some(device) = self.policy.id_of(&c.device) else {
                continue;
            };
            let Ok(pattern) = Pattern::parse(&c.pattern) else {
                continue;
            };
            let Some(rule) = self
                .policy
                .rules(device)
                .and_then(|rs| rs.iter().find(|r| r.pattern == pattern))
            else {
                continue;
            };
            if !pattern.matches(&c.name) {
                continue;
            }
            let credit = Credit {
                name: c.name,
                pattern,
                rules: rule.rules.clone(),
                expires_ns: now.saturating_add(left_ms.saturating_mul(1_000_000)),
            };
            if self
                .table
                .credit(&self.limits, device, c.addr, credit)
                .is_ok()
            {
                restored += 1;
            }
        }
        // Entries in the kernel that the state file does not explain.
        let kernel: Vec<(LearnedKey, LearnedRules)> =
            self.learned.iter().filter_map(Result::ok).collect();
        let (mut orphans, mut distrusted) = (0, 0);
        for (k, v) in kernel {
            let addr = super::table::addr_of(&k);
            if self.policy.rules(k.device).is_none() {
                let _ = self.learned.remove(&k);
                continue;
            }
            if !self.table.entries().contains_key(&(k.device, addr)) {
                // Id 0 (unknown devices) never changes hands.
                if trusted_ids || k.device == 0 {
                    self.table.adopt_orphan(k.device, addr, v);
                    orphans += 1;
                } else {
                    // Its id may now name another device.
                    let _ = self.learned.remove(&k);
                    distrusted += 1;
                }
            }
        }
        let writes: Vec<Write> = self
            .table
            .entries()
            .iter()
            .filter_map(|((d, a), cs)| {
                super::table::value(cs).map(|v| Write::Put(super::table::key(*d, *a), v))
            })
            .collect();
        self.write(writes);
        let expired = self.table.expire(now);
        self.write(expired);
        self.stats.entries.store(self.table.len() as u64, Relaxed);
        tracing::info!(
            restored,
            clamped,
            kept_unexplained = orphans,
            dropped_unexplained = distrusted,
            "learned addresses restored"
        );
        Ok(())
    }

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
        loop {
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            unsafe { libc::poll(&mut pfd, 1, 100) };
            self.drain();
            match rx.try_recv() {
                Ok(Command::Policy(p)) => self.reconcile(p),
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
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
            if self.dirty && now - last_save >= SAVE_EVERY.as_nanos() as u64 {
                last_save = now;
                self.save();
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

    fn save(&mut self) {
        let now = mono_ns();
        let now_ms = crate::clock::unix_ms(SystemTime::now());
        let mut saved = Saved {
            version: state::VERSION,
            saved_ms: now_ms,
            boot_id: state::boot_id(),
            saved_mono_ns: now,
            credits: Vec::new(),
        };
        for ((device, addr), credits) in self.table.entries() {
            let Some((name, _)) = self.policy.devices.get(device) else {
                continue;
            };
            for c in credits.iter().filter(|c| c.expires_ns > now) {
                saved.credits.push(SavedCredit {
                    device: name.clone(),
                    addr: *addr,
                    name: c.name.clone(),
                    pattern: c.pattern.to_string(),
                    expires_ms: now_ms + (c.expires_ns - now) / 1_000_000,
                });
            }
        }
        match state::save(&self.state_file, &saved) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::error!(file = %self.state_file.display(), error = %format!("{e:#}"), "saving DNS state failed")
            }
        }
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

    fn write(&mut self, writes: Vec<Write>) {
        for w in writes {
            let r = match &w {
                Write::Put(k, v) => self.learned.insert(k, v, 0),
                Write::Delete(k) => match self.learned.remove(k) {
                    Err(aya::maps::MapError::KeyNotFound) => Ok(()),
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

    fn handle(&mut self, rec: &[u8]) {
        let hdr = std::mem::offset_of!(DnsFrame, frame);
        if rec.len() < hdr {
            return;
        }
        let u32_at = |o: usize| u32::from_ne_bytes(rec[o..o + 4].try_into().unwrap());
        let stamp = u64::from_ne_bytes(rec[0..8].try_into().unwrap());
        let ifindex = u32_at(std::mem::offset_of!(DnsFrame, ifindex));
        let len = u32_at(std::mem::offset_of!(DnsFrame, len)) as usize;
        let device = u32_at(std::mem::offset_of!(DnsFrame, device));
        let kind = rec[std::mem::offset_of!(DnsFrame, kind)];
        let Some(frame_bytes) = rec.get(hdr..hdr + len) else {
            return;
        };
        match kind {
            DNS_KIND_QUERY => self.query(frame_bytes, device),
            DNS_KIND_ANSWER => self.answer(frame_bytes, device, ifindex, stamp),
            _ => {}
        }
    }

    fn query(&mut self, bytes: &[u8], device: u32) {
        self.stats.queries.fetch_add(1, Relaxed);
        let Some(f) = frame::parse(bytes) else { return };
        // The sender's MAC (bytes 6..12): budgets are per sender.
        let mac: [u8; 6] = bytes[6..12].try_into().expect("a parsed frame has a MAC");
        let now = mono_ns();
        for msg in frame::messages(f.proto, &bytes[f.payload.clone()]).unwrap_or_default() {
            if let Some((id, name)) = learn::query_of(msg) {
                let key = QueryKey {
                    client: f.src,
                    port: f.sport,
                    resolver: f.dst,
                    id,
                };
                self.pending
                    .record_from(key, name, Querier { device, mac }, now);
            }
        }
    }

    fn answer(&mut self, bytes: &[u8], device: u32, ifindex: u32, stamp: u64) {
        self.stats.answers.fetch_add(1, Relaxed);
        let mut out = bytes.to_vec();
        match frame::parse(bytes) {
            None => self.stats.refuse(Refusal::Malformed),
            Some(f) => {
                match frame::messages(f.proto, &bytes[f.payload.clone()]) {
                    None => self.stats.refuse(Refusal::TcpPartial),
                    Some(msgs) => {
                        let route = Route {
                            device,
                            resolver: f.src,
                            client: f.dst,
                            client_port: f.dport,
                        };
                        // The device's MAC: budgets of unknown devices are per MAC.
                        let mac: Option<[u8; 6]> = bytes[0..6].try_into().ok();
                        for m in msgs {
                            self.learn(m, route, mac);
                        }
                    }
                }
                frame::finalize_checksum(&mut out, &f);
                if let Err(e) = self.released.record(bytes, &f) {
                    tracing::warn!(error = %e, "recording a released DNS-over-TCP segment failed: the stack's re-send will be held again");
                }
            }
        }
        // Released whatever was learned: a refused answer widens nothing.
        match self.injector.send(ifindex, &out) {
            Ok(()) => {
                self.stats.reinjected.fetch_add(1, Relaxed);
                self.stats.hold(mono_ns().saturating_sub(stamp));
            }
            Err(e) => {
                self.stats.reinject_failed.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, ifindex, len = out.len(), "releasing a held DNS answer failed");
            }
        }
    }

    fn learn(&mut self, msg: &[u8], route: Route, mac: Option<[u8; 6]>) {
        let now = mono_ns();
        let rules = self.policy.rules(route.device).unwrap_or(&[]);
        let lesson = match learn::answer(msg, route, &mut self.pending, now).and_then(|a| {
            for (addr, _) in &a.addrs {
                self.names.record(route.device, *addr, &a.name);
            }
            learn::lesson(a, rules)
        }) {
            Ok(l) => l,
            Err(r) => {
                self.stats.refuse(r);
                return;
            }
        };
        self.stats
            .off_chain_records
            .fetch_add(lesson.off_chain as u64, Relaxed);
        let mut writes = Vec::new();
        for (addr, ttl) in &lesson.addrs {
            let expires_ns = now + self.settings.lifetime(*ttl).as_nanos() as u64;
            for (pattern, rules) in &lesson.patterns {
                let c = Credit {
                    name: lesson.name.clone(),
                    pattern: pattern.clone(),
                    rules: rules.clone(),
                    expires_ns,
                };
                match self
                    .table
                    .credit_from(&self.limits, route.device, mac, *addr, c)
                {
                    Ok(Some(w)) => {
                        self.stats.learned.fetch_add(1, Relaxed);
                        writes.push(w);
                    }
                    Ok(None) => {}
                    Err(r) => {
                        self.stats.refuse(r);
                        tracing::debug!(device = route.device, name = %lesson.name, %addr, reason = r.name(), "not learned");
                    }
                }
            }
        }
        if !writes.is_empty() {
            self.dirty = true;
        }
        tracing::debug!(device = route.device, name = %lesson.name, addrs = lesson.addrs.len(), "learned");
        self.write(writes);
    }
}
