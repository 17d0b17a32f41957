//! The learned-address state file: credits by device *name* with wall-clock
//! deadlines, so a restarted daemon (or one restarted after a reboot, when
//! the kernel's monotonic clock starts again) restores what it had learned
//! and reconciles it with the maps and the current policy.

use std::{net::IpAddr, path::Path};

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub version: u32,
    /// When the file was written: the wall clock (Unix ms), and the boot id
    /// with CLOCK_MONOTONIC, which give the time since exactly when the
    /// daemon restarts within one boot. 0 / empty in older files.
    #[serde(default)]
    pub saved_ms: u64,
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub saved_mono_ns: u64,
    pub credits: Vec<SavedCredit>,
}

/// How much time has passed since a file was saved, as far as can be told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elapsed {
    /// Same boot: from the monotonic clock.
    Exact(u64),
    /// Another boot: from the wall clock.
    Wall(u64),
    /// Another boot, and the wall clock is behind the save: a router
    /// without a real-time clock that has not synced yet. Counted as no
    /// time at all, so a lifetime never outlasts what it had at the save.
    ClockBehind,
    /// A file without a save time (older versions): lifetimes are read
    /// against the wall clock as they are.
    Unknown,
}

impl Saved {
    pub fn elapsed(&self, now_ms: u64, now_mono_ns: u64, boot_id: &str) -> Elapsed {
        if self.saved_ms == 0 {
            return Elapsed::Unknown;
        }
        if !boot_id.is_empty() && self.boot_id == boot_id && now_mono_ns >= self.saved_mono_ns {
            return Elapsed::Exact((now_mono_ns - self.saved_mono_ns) / 1_000_000);
        }
        match now_ms.checked_sub(self.saved_ms) {
            Some(ms) => Elapsed::Wall(ms),
            None => Elapsed::ClockBehind,
        }
    }

    /// What is left of `c`'s lifetime (ms), before any clamp.
    pub fn left_ms(&self, c: &SavedCredit, now_ms: u64, elapsed: Elapsed) -> u64 {
        let at_save = c.expires_ms.saturating_sub(self.saved_ms);
        match elapsed {
            Elapsed::Exact(ms) | Elapsed::Wall(ms) => at_save.saturating_sub(ms),
            Elapsed::ClockBehind => at_save,
            Elapsed::Unknown => c.expires_ms.saturating_sub(now_ms),
        }
    }
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`); empty if unreadable.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedCredit {
    /// Device name; empty for unknown devices (the default profile).
    pub device: String,
    pub addr: IpAddr,
    pub name: String,
    pub pattern: String,
    /// Unix time, milliseconds.
    pub expires_ms: u64,
}

pub const VERSION: u32 = 1;

pub fn load(path: &Path) -> anyhow::Result<Saved> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let s: Saved = serde_json::from_slice(&bytes)?;
            if s.version != VERSION {
                anyhow::bail!("state file version {} (expected {VERSION})", s.version);
            }
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(e) => Err(e.into()),
    }
}

/// Writes atomically (temporary file, fsync, rename), 0600.
pub fn save(path: &Path, saved: &Saved) -> anyhow::Result<()> {
    crate::private::write_atomic(path, &serde_json::to_vec(saved)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(saved_ms: u64, boot_id: &str, saved_mono_ns: u64) -> Saved {
        Saved {
            version: VERSION,
            saved_ms,
            boot_id: boot_id.into(),
            saved_mono_ns,
            credits: Vec::new(),
        }
    }

    fn credit(expires_ms: u64) -> SavedCredit {
        SavedCredit {
            device: "d".into(),
            addr: "203.0.113.1".parse().unwrap(),
            name: "a.example.com".into(),
            pattern: "*.example.com".into(),
            expires_ms,
        }
    }

    const DAY_MS: u64 = 86_400_000;
    const T: u64 = 1_800_000_000_000;

    #[test]
    fn lifetimes_count_from_the_save_by_the_best_clock_there_is() {
        let s = saved(T, "boot-a", 5_000_000_000);
        let c = credit(T + 300_000);
        // Same boot, 10 s later by the monotonic clock, whatever the wall
        // clock says (here: set back a day).
        let e = s.elapsed(T - DAY_MS, 15_000_000_000, "boot-a");
        assert_eq!(e, Elapsed::Exact(10_000));
        assert_eq!(s.left_ms(&c, T - DAY_MS, e), 290_000);
        // Another boot, 100 s later by the wall clock.
        let e = s.elapsed(T + 100_000, 1, "boot-b");
        assert_eq!(e, Elapsed::Wall(100_000));
        assert_eq!(s.left_ms(&c, T + 100_000, e), 200_000);
        // Another boot without a real-time clock (1970 at boot): not a day
        // and 5 minutes, as the wall clock alone would say, but at most
        // the 5 minutes it had.
        let e = s.elapsed(0, 1, "boot-b");
        assert_eq!(e, Elapsed::ClockBehind);
        assert_eq!(s.left_ms(&c, 0, e), 300_000);
        // An older file: the wall clock as it is.
        let old = saved(0, "", 0);
        let e = old.elapsed(T, 1, "boot-b");
        assert_eq!(e, Elapsed::Unknown);
        assert_eq!(old.left_ms(&c, T, e), 300_000);
    }
}
