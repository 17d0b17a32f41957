//! `iotfence run`: bring enforcement up (or adopt it), then serve: violation
//! events, SIGHUP reloads, and a bounded drain on SIGTERM/SIGINT that leaves
//! enforcement pinned in the kernel.

mod learning;

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
};

use crate::{
    config::Config,
    diag::Diagnostic,
    dns::{self, service::DnsPolicy},
    events,
    exit::StartError,
    kernel::router_addrs::RouterAddrs,
    kernel::{bpffs, load::Datapath},
    lock,
    metrics::{ReloadFailure, Shared},
    notify::{self, Notifier},
    policy::compile::{self, Compiled},
    policy::ids::DeviceIds,
};

/// How often the router's own addresses are read again (see router_addrs).
const ADDR_CHECK: Duration = Duration::from_secs(5);

/// How long events already in the ring buffer may take to flush at shutdown.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Everything up to the first applied policy; no side effects before the
/// caller has validated `cfg` and `policy`.
pub fn start(cfg: &Config, policy: &mut Compiled) -> Result<Running, StartError> {
    let kernel = crate::kernel::probe::Kernel::probe();
    kernel
        .require(cfg.attach)
        .map_err(|e| StartError::Kernel(e.into()))?;
    let lock = lock::acquire(&cfg.pin_dir).map_err(StartError::Locked)?;
    // Bound before anything is attached, so a taken port fails the start
    // instead of leaving enforcement without its metrics.
    let metrics = match cfg.metrics_listen {
        None => None,
        Some(addr) => {
            let bind = || {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            };
            Some(bind().map_err(|source| StartError::MetricsAddress { addr, source })?)
        }
    };
    Ok(enforce(cfg, policy, kernel, lock, metrics)?)
}

/// The rest of `start`: everything that asks the kernel.
fn enforce(
    cfg: &Config,
    policy: &mut Compiled,
    kernel: crate::kernel::probe::Kernel,
    lock: lock::DaemonLock,
    metrics: Option<std::net::TcpListener>,
) -> anyhow::Result<Running> {
    let events_out = events::EventSink::open(cfg)?;
    let mut ids = DeviceIds::load(&cfg.state_dir, cfg.max_devices);
    ids.assign(policy).context("assigning device ids")?;
    bpffs::ensure(&cfg.pin_dir)?;
    let adopted = cfg.pin_dir.join("links").is_dir();
    let mut dp = Datapath::load_for(&cfg.pin_dir, &cfg.dns, cfg.max_devices, kernel)?;
    let mut router_addrs = RouterAddrs::default();
    router_addrs.update(&mut dp, cfg)?;
    // The policy goes in before any program is attached, so the first
    // packet judged is judged by it.
    let generation = dp.apply(cfg, policy)?;
    // DNS learning is up (heartbeat fresh) before any answer can be held.
    let dns_maps = dp.dns.take().context("DNS maps already taken")?;
    let dns = dns::service::Service::start(cfg, dns_maps, DnsPolicy::of(policy), ids.trusted())
        .context("starting DNS learning")?;
    let shared = Arc::new(Shared::new(
        cfg.pin_dir.clone(),
        dns.stats.clone(),
        dns.names.clone(),
        dns.refused.clone(),
    ));
    shared.applied(policy);
    for iface in &cfg.interfaces {
        // At boot the daemon starts before the network (the unit is ordered
        // before network-pre.target): an interface that does not exist yet
        // is attached the moment it appears (`follow_links`).
        if crate::links::index_of(iface).is_none() {
            shared.missing(iface);
            tracing::warn!(interface = %iface, "interface does not exist yet: enforcing on it as soon as it appears (reported missing until then)");
            continue;
        }
        let how = attach(&mut dp, cfg, iface)?;
        shared.attached(iface, how);
        tracing::info!(interface = %iface, hook = how, generation, adopted, devices = policy.devices.len(), profiles = policy.profiles.len(), "enforcing");
    }
    Ok(Running {
        dp,
        dns,
        router_addrs,
        ids,
        lock,
        shared,
        metrics,
        events_out,
    })
}

/// An enforcing datapath with its DNS learning thread and the daemon lock.
pub struct Running {
    pub dp: Datapath,
    pub dns: dns::service::Service,
    pub router_addrs: RouterAddrs,
    pub ids: DeviceIds,
    pub lock: lock::DaemonLock,
    pub shared: Arc<Shared>,
    /// The bound metrics listener, served once the runtime runs.
    pub metrics: Option<std::net::TcpListener>,
    pub events_out: events::EventSink,
}

pub async fn serve(cfg: Config, mut policy: Compiled, running: Running) -> anyhow::Result<()> {
    let Running {
        mut dp,
        mut dns,
        mut router_addrs,
        mut ids,
        lock: _lock,
        shared,
        metrics,
        mut events_out,
    } = running;
    // Learn mode (`/learn`), its token written before the endpoint listens
    // and "ready" is said; the policy as applied differs from the
    // configured one while devices are learned.
    let (learn, mut learn_requests) = learning::Learning::open(&cfg, dns.learning.clone(), &shared);
    let mut applied = policy.clone();
    if let Some(l) = metrics {
        let addr =
            crate::metrics::http::serve(tokio::net::TcpListener::from_std(l)?, shared.clone())?;
        // Says no "ready": that word is logged last, once events and
        // file watches are live (the lab and scripts wait for it).
        tracing::info!(%addr, "metrics endpoint listening");
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let ring = dp
        .events
        .take()
        .context("event ring buffer already taken")?;
    // SAFETY: the ring buffer owns its fd and AsyncFd owns the ring buffer,
    // so the fd stays open exactly as long as it is registered.
    let mut ring = unsafe { AsyncFd::register(ring) }.map_err(|e| e.into_parts().1)?;
    // Interfaces deleted and re-created under us (see links.rs).
    let links = crate::links::LinkWatch::new().context("watching interfaces")?;
    // SAFETY: the watch owns its socket and AsyncFd owns the watch.
    let links = unsafe { AsyncFd::register(links) }.map_err(|e| e.into_parts().1)?;
    let mut indexes: std::collections::BTreeMap<String, u32> = cfg
        .interfaces
        .iter()
        .filter_map(|i| crate::links::index_of(i).map(|x| (i.clone(), x)))
        .collect();
    let mut watcher = crate::watch::Watcher::new()?;
    watcher.watch(&crate::watch::dirs(&cfg.policy, &policy.files));
    // A change is applied once the files have been quiet this long: editors
    // write in several steps, and a half-written file must not be loaded.
    let debounce = Duration::from_millis(300);
    let mut reload_at: Option<tokio::time::Instant> = None;
    // Reloads after file changes parse only the files whose text changed.
    let mut parsed = crate::policy::sources::Cache::default();
    // The router's addresses change without notice (DHCP, an admin).
    let mut addr_check = tokio::time::interval(ADDR_CHECK);
    tracing::info!(pin_dir = %cfg.pin_dir.display(), learning = policy.learns(), "ready");
    let manager = Notifier::from_env();
    manager.send(&format!("READY=1\nSTATUS={}", shared.summary()));
    // Fed from this loop, and only while DNS learning beats: a stuck loop
    // or a dead DNS thread gets the daemon restarted (the VLAN's DNS
    // answers wait for it).
    let mut watchdog = notify::watchdog_interval().map(tokio::time::interval);
    let mut refusals = dns
        .refusals
        .take()
        .context("DNS refusal events already taken")?;
    loop {
        tokio::select! {
            _ = async { watchdog.as_mut().unwrap().tick().await }, if watchdog.is_some() => {
                if dns.stats.beating(crate::clock::mono_ns()) {
                    manager.send("WATCHDOG=1");
                } else {
                    tracing::warn!("DNS learning has not beaten in time: not feeding the watchdog");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // SIGHUP is the admin's full reload: every file parsed anew.
                parsed = crate::policy::sources::Cache::default();
                reload_at = Some(tokio::time::Instant::now());
            }
            changed = watcher.changed() => {
                changed?;
                reload_at = Some(tokio::time::Instant::now() + debounce);
            }
            _ = tokio::time::sleep_until(reload_at.unwrap_or_else(tokio::time::Instant::now)), if reload_at.is_some() => {
                reload_at = None;
                manager.send("RELOADING=1");
                let learning = learn.sessions.learning();
                if reload(&cfg, &mut parsed, &mut policy, &mut dp, &mut ids, &shared, &learning) {
                    applied = crate::learn::view::view(&policy, &learning);
                    dns.update(DnsPolicy::of(&applied));
                }
                manager.send("READY=1");
                if let Err(e) = events_out.reopen() {
                    tracing::warn!(error = %format!("{e:#}"), "events file");
                }
                watcher.watch(&crate::watch::dirs(&cfg.policy, &policy.files));
            }
            guard = links.readable() => {
                let mut guard = guard?;
                let events = guard.get_inner().read();
                guard.clear_ready();
                follow_links(&cfg, events, &mut indexes, &mut dp, &shared);
            }
            _ = addr_check.tick() => {
                if let Err(e) = router_addrs.update(&mut dp, &cfg) {
                    tracing::warn!(error = %format!("{e:#}"), "updating the router's addresses in the kernel");
                }
            }
            Some(req) = learn_requests.recv() => {
                let mut l = learning::Loop { cfg: &cfg, policy: &policy, applied: &mut applied, dp: &mut dp, dns: &dns, shared: &shared };
                l.handle(&learn, req);
            }
            _ = tokio::time::sleep_until(learn.wake_at()) => {
                let mut l = learning::Loop { cfg: &cfg, policy: &policy, applied: &mut applied, dp: &mut dp, dns: &dns, shared: &shared };
                l.expire(&learn);
            }
            Some(r) = refusals.recv() => {
                // A learning device's names are what it is observed for.
                if learn.sessions.is_learning(r.device) {
                    continue;
                }
                if !events::refused(&r, &applied, &mut events_out) {
                    events::Record::write_errors(&*shared, 1);
                }
            }
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                events::drain(guard.get_inner_mut(), &applied, &*shared, &mut events_out);
                guard.clear_ready();
            }
        }
    }
    tracing::info!("shutting down; enforcement stays pinned in the kernel");
    // Learning does not outlive the daemon: what stays pinned is the
    // configured policy.
    let learning = learn.sessions.learning();
    if !learning.is_empty() {
        match dp.apply(&cfg, &policy) {
            Ok(generation) => {
                tracing::info!(
                    generation,
                    "learning ended by the shutdown: the configured profiles applied"
                );
                for id in learning {
                    let _ = crate::kernel::flows::forget_device(&mut dp.maps.flows, id);
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "learning ended by the shutdown, but applying the configured profiles failed: the next start applies them")
            }
        }
    }
    manager.send("STOPPING=1");
    dns.stop();
    // What is in the ring now is written out; an empty ring costs nothing
    // (waiting for it to become readable would always take the whole grace).
    let deadline = std::time::Instant::now() + DRAIN_GRACE;
    while std::time::Instant::now() < deadline
        && events::drain(ring.get_mut(), &applied, &*shared, &mut events_out) > 0
    {}
    Ok(())
}

/// Attaches to `iface`, its VLAN filter (`vlans:`) written first so the
/// first frame judged there is judged by it.
fn attach(dp: &mut Datapath, cfg: &Config, iface: &str) -> anyhow::Result<&'static str> {
    let index = crate::links::index_of(iface)
        .with_context(|| format!("interface {iface} does not exist"))?;
    let vlans = cfg.vlans.get(iface).map(Vec::as_slice);
    crate::kernel::trunks::set(&mut dp.maps, index, vlans)
        .with_context(|| format!("writing the VLAN filter of {iface}"))?;
    if vlans.is_some() && cfg.attach != crate::config::AttachMode::Tc {
        if let Ok(true) = crate::links::strips_vlan_tags(iface) {
            tracing::warn!(interface = %iface, "the NIC strips VLAN tags before XDP sees them: every frame looks untagged and is judged, other VLANs' hosts included; fix: `ethtool -K {iface} rxvlan off`, or `attach: tc` (TC reads the tag the NIC stripped)");
        }
    }
    dp.attach(iface, cfg.attach, cfg.dns.redirect)
}

/// Re-attaches to a configured interface that appeared with a new index (or
/// all of them, after lost events), and marks deleted ones missing.
fn follow_links(
    cfg: &Config,
    events: std::io::Result<Vec<crate::links::LinkEvent>>,
    indexes: &mut std::collections::BTreeMap<String, u32>,
    dp: &mut Datapath,
    shared: &Shared,
) {
    use crate::links::{index_of, LinkEvent};
    let events = events.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "interface events lost; checking every interface");
        Vec::new()
    });
    let t0 = std::time::Instant::now();
    for iface in &cfg.interfaces {
        // By name, or by the index it had: a rename shows up under the new
        // name only.
        let known = indexes.get(iface).copied();
        let seen = events.iter().any(|e| match e {
            LinkEvent::Present { name, index } | LinkEvent::Gone { name, index } => {
                name == iface || Some(*index) == known
            }
        });
        if !seen && !events.is_empty() {
            continue;
        }
        match index_of(iface) {
            None => {
                if indexes.remove(iface).is_some() {
                    tracing::error!(interface = %iface, "interface gone (deleted or renamed): nothing is enforced under its name until it returns");
                }
                shared.missing(iface);
            }
            Some(index) if indexes.get(iface) != Some(&index) => match attach(dp, cfg, iface) {
                Ok(how) => {
                    indexes.insert(iface.clone(), index);
                    shared.attached(iface, how);
                    tracing::info!(interface = %iface, index, hook = how, took_ms = t0.elapsed().as_millis() as u64, "interface (re)appeared: enforcing again");
                }
                Err(e) => {
                    shared.missing(iface);
                    tracing::error!(interface = %iface, error = %format!("{e:#}"), "re-attaching failed");
                }
            },
            Some(_) => {}
        }
    }
}

/// Re-reads the policy; an invalid one leaves the running policy in force.
/// True when a new policy was applied (with the devices `learning` on
/// their stand-in profiles, see `learn::view`).
fn reload(
    cfg: &Config,
    parsed: &mut crate::policy::sources::Cache,
    policy: &mut Compiled,
    dp: &mut Datapath,
    ids: &mut DeviceIds,
    shared: &Shared,
    learning: &[u32],
) -> bool {
    let started = std::time::Instant::now();
    // Milliseconds, to 0.1, for the log: where a slow reload's time went.
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e4).round() / 10.0;
    match compile::load_cached(cfg, parsed) {
        Err(diags) => {
            for d in &diags {
                tracing::error!(error = %d, "reload rejected; the running policy stays in force");
            }
            shared.reload_failed(
                ReloadFailure::Rejected,
                diags.first().map(|d| d.to_string()).unwrap_or_default(),
            );
            false
        }
        Ok(mut new) => {
            let compiled = started.elapsed();
            let applied = ids.assign(&mut new).and_then(|()| {
                let v = crate::learn::view::view(&new, learning);
                dp.apply(cfg, &v).map(|g| (g, v))
            });
            match applied {
                Ok((generation, v)) => {
                    log_warnings(&new);
                    tracing::info!(
                        generation,
                        devices = new.devices.len(),
                        files_parsed = parsed.parsed,
                        compile_ms = ms(compiled),
                        apply_ms = ms(started.elapsed() - compiled),
                        "policy reloaded"
                    );
                    shared.applied(&v);
                    *policy = new;
                    true
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "applying the reloaded policy failed");
                    shared.reload_failed(ReloadFailure::ApplyFailed, format!("{e:#}"));
                    false
                }
            }
        }
    }
}

/// Validates the configuration and its policy (no side effects).
pub fn validate(config: &Path) -> Result<(Config, Compiled), Vec<Diagnostic>> {
    let cfg = crate::config::load(config)?;
    let policy = compile::load(&cfg)?;
    for w in &cfg.warnings {
        tracing::warn!(warning = %w, "configuration");
    }
    log_warnings(&policy);
    Ok((cfg, policy))
}

fn log_warnings(policy: &Compiled) {
    for w in &policy.warnings {
        tracing::warn!(warning = %w, "policy lint");
    }
}
