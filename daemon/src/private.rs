//! Files that map devices to addresses and the names they resolved (learned
//! state, device ids, violation events) are the admin's business only:
//! 0600 files, and 0700 for a state directory the daemon creates.

use std::{
    fs::{self, DirBuilder, OpenOptions, Permissions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
};

use anyhow::Context;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and parents) 0700. One that exists keeps its mode — it
/// may be a directory other programs share (`state_dir: /var/lib`), which
/// must not be taken from them — with a warning when others may enter it;
/// the files in it are 0600 either way.
pub fn dir(dir: &Path) -> anyhow::Result<()> {
    if let Ok(meta) = fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), mode = format!("{mode:o}"), "state directory is open to other users; its files are 0600, make it 0700");
        }
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename),
/// 0600, in a 0700 parent.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // A leftover temporary file may predate this mode.
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("saving {}", path.display()))
}

/// Opens `path` for appending, created 0600 (an existing file is
/// restricted to 0600 too).
pub fn append(path: &Path) -> anyhow::Result<fs::File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}
