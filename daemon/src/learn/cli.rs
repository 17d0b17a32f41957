//! `iotfence learn DEVICE --for 60s`: asks the running daemon to learn a
//! device, waits (Ctrl-C ends it early and still drafts), fetches the
//! report, renders the draft, checks it with the policy checker, and
//! writes it. The daemon ends the session at its deadline by itself, so a
//! client that is killed outright leaves nothing behind.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{
    client::{CallError, Daemon},
    draft::{self, Site},
    report::Report,
    token,
};
use crate::{config, exit, policy::compile};

pub struct Args {
    pub device: String,
    pub duration: Duration,
    pub config: PathBuf,
    pub output: Option<PathBuf>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// A wildcard listen address is reached through loopback.
pub fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => ([127, 0, 0, 1], addr.port()).into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => {
            (std::net::Ipv6Addr::LOCALHOST, addr.port()).into()
        }
        _ => addr,
    }
}

fn code(e: &CallError) -> i32 {
    match e {
        CallError::Unreachable { .. } | CallError::Malformed(_) => exit::UNAVAILABLE,
        CallError::Refused { status: 401, .. } => exit::NOPERM,
        CallError::Refused { status: 409, .. } => exit::TEMPFAIL,
        CallError::Refused { status: 503, .. } => exit::UNAVAILABLE,
        CallError::Refused { .. } => exit::USAGE,
    }
}

pub fn run(a: Args) -> i32 {
    let cfg = match config::load(&a.config) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            return exit::DATA;
        }
    };
    let Some(addr) = cfg.metrics_listen.map(reachable) else {
        eprintln!(
            "{}: metrics are disabled, and learning talks to the daemon there",
            a.config.display()
        );
        return exit::USAGE;
    };
    let token = match token::read(&cfg.state_dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("iotfence learn: {e:#}");
            return exit::NOPERM;
        }
    };
    let daemon = Daemon { addr, token };
    let seconds = a.duration.as_secs().max(1);
    // Installed before the session starts, so no Ctrl-C is lost in between.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    if let Err(e) = daemon.start(&a.device, seconds) {
        eprintln!("iotfence learn: {e}");
        return code(&e);
    }
    eprintln!(
        "learning {} for {seconds} s: it is audited (nothing blocked) meanwhile; Ctrl-C ends it early and still drafts",
        a.device
    );
    let report = match wait(&daemon, &a.device, seconds) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iotfence learn: {e}");
            return code(&e);
        }
    };
    finish(&a, &cfg, &report)
}

/// Waits out the session (or an interrupt) and fetches its report. The
/// session is looked at every second, so a daemon that stopped (which ends
/// learning) is noticed at once.
fn wait(daemon: &Daemon, device: &str, seconds: u64) -> Result<Report, CallError> {
    // A restarted daemon has a new token and no sessions: learning ended.
    let gone = |e: CallError| match e {
        CallError::Refused {
            status: 401 | 404, ..
        } => CallError::Malformed(format!(
            "the daemon restarted, which ended learning {device}: nothing to draft"
        )),
        e => e,
    };
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(seconds);
    let mut look = t0;
    let mut progress = t0 + Duration::from_secs(15);
    while Instant::now() < until && !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < look {
            continue;
        }
        look += Duration::from_secs(1);
        let r = daemon.progress(device).map_err(gone)?;
        if r.state != "running" {
            return Ok(r);
        }
        if Instant::now() >= progress {
            progress += Duration::from_secs(15);
            eprintln!(
                "  {} s: {} destination(s), {} name(s) so far",
                r.observed_seconds,
                r.destinations.len(),
                r.names.len()
            );
        }
    }
    if !INTERRUPTED.load(Ordering::SeqCst) {
        // The daemon ends the session at its own deadline: give it a moment.
        let grace = Instant::now() + Duration::from_secs(5);
        while daemon.progress(device).map_err(gone)?.state == "running" && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    daemon.stop(device).map_err(gone)
}

/// Renders, checks and writes the draft; nothing observed is lost even when
/// the check fails (the draft is written, and the exit code says so).
fn finish(a: &Args, cfg: &config::Config, report: &Report) -> i32 {
    let site = Site {
        resolvers: cfg.resolvers.clone(),
        dhcp_servers: cfg.dhcp_servers.clone(),
    };
    let text = draft::render(report, &site);
    let shown = a.output.clone().unwrap_or_else(|| PathBuf::from("<draft>"));
    let checked = compile::compile(&shown, &text, cfg);
    match &a.output {
        Some(p) => {
            if let Err(e) = std::fs::write(p, &text) {
                eprintln!("iotfence learn: writing {}: {e}", p.display());
                print!("{text}");
                return exit::OS;
            }
        }
        None => print!("{text}"),
    }
    let literal = draft::literal(report, &site);
    eprintln!(
        "{} learned in {} s: {} destination(s), {} name(s) resolved, {} reached without DNS{}",
        report.device,
        report.observed_seconds,
        report.destinations.len(),
        report.names.len(),
        literal,
        match &a.output {
            Some(p) => format!("; draft written to {}", p.display()),
            None => String::new(),
        }
    );
    match checked {
        Ok(_) => {
            eprintln!(
                "the draft passes iotfence check ({})",
                check_hint(a.output.as_deref(), &a.config)
            );
            0
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!("the draft does not pass iotfence check: edit it before use");
            exit::DATA
        }
    }
}

fn check_hint(output: Option<&Path>, config: &Path) -> String {
    match output {
        Some(p) => format!(
            "iotfence check --config {} {}",
            config.display(),
            p.display()
        ),
        None => format!("against {}", config.display()),
    }
}
