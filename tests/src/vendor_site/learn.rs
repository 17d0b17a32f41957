//! Learn mode over the vendor site: `iotfence learn` (the real binary, in
//! the router namespace, against the site's running daemon) learns devices
//! while they reach their required endpoints, and the site policy with the
//! drafts in place of their vendor profiles.

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::*;
use crate::lab::{daemon_binary, enter_ns};

/// One device's session, as the client ended it.
pub struct Learned {
    pub device: &'static str,
    pub draft: PathBuf,
    /// What the client printed (progress, summary, the check's verdict).
    pub stderr: String,
    pub success: bool,
    /// Rounds of the required probes run while learning.
    pub rounds: usize,
}

/// Learns the devices of `plans` at once for `seconds`, each reaching its
/// required endpoints round after round meanwhile; drafts go to
/// `lab.dir/learned/DEVICE.yaml`.
pub fn learn(
    lab: &Lab,
    config: &Path,
    plans: &[&Plan],
    seconds: u64,
) -> anyhow::Result<Vec<Learned>> {
    let dir = lab.dir.join("learned");
    std::fs::create_dir_all(&dir)?;
    let daemon = lab.daemon.as_ref().context("no daemon")?;
    let started = daemon.log().matches("learning started").count();
    let mut clients = Vec::new();
    for p in plans {
        let ns = std::fs::File::open(lab.router.path())?;
        let draft = dir.join(format!("{}.yaml", p.device));
        let mut cmd = Command::new(daemon_binary());
        cmd.args([
            "learn",
            p.device,
            "--for",
            &format!("{seconds}s"),
            "--config",
        ])
        .arg(config)
        .arg("--output")
        .arg(&draft)
        .stderr(Stdio::piped());
        // SAFETY: setns in the child before exec; the file stays open.
        unsafe { cmd.pre_exec(move || enter_ns(&ns)) };
        clients.push((p, draft, cmd.spawn()?));
    }
    let t0 = Instant::now();
    while daemon.log().matches("learning started").count() < started + plans.len() {
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(10),
            "learning did not start:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let until = t0 + Duration::from_secs(seconds.saturating_sub(1));
    let rounds: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|p| {
                s.spawn(move || {
                    let mut n = 0;
                    while Instant::now() < until {
                        run(lab, p.device, p.required.clone());
                        n += 1;
                        // A device's pace, not a flood's (CI has 2 vCPUs).
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    let mut out = Vec::new();
    for ((p, draft, child), rounds) in clients.into_iter().zip(rounds) {
        let o = child.wait_with_output()?;
        out.push(Learned {
            device: p.device,
            draft,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            success: o.status.success(),
            rounds,
        });
    }
    Ok(out)
}

/// The site policy (`write_site`) with each learned device on its draft
/// (`DEVICE-learned`, included from `learned/`).
pub fn site_with_drafts(lab: &Lab, learned: &[Learned]) -> String {
    let mut site = write_site(lab);
    for l in learned {
        site = site.replacen(
            "include:\n",
            &format!("include:\n  - learned/{}.yaml\n", l.device),
            1,
        );
        let at = site
            .find(&format!("  - name: {}\n", l.device))
            .expect("the device is in the site");
        let line = at + site[at..].find("    profile: ").expect("its profile line");
        let end = line + site[line..].find('\n').expect("a line end");
        site.replace_range(line..end, &format!("    profile: {}-learned", l.device));
    }
    site
}
