//! The learned-address state file: credits by device *name* with wall-clock
//! deadlines, so a restarted daemon (or one restarted after a reboot, when
//! the kernel's monotonic clock starts again) restores what it had learned
//! and reconciles it with the maps and the current policy.

use std::{
    net::IpAddr,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    pub version: u32,
    pub credits: Vec<SavedCredit>,
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

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

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
