//! `iotfence prepare`: the privileged part of a start, for a service
//! manager to run before the unprivileged daemon (`ExecStartPre=+` in the
//! unit): bpffs mounted where it is missing, the pin directory created and
//! handed to the service user with everything pinned in it, and the bpffs
//! root made traversable for that user (search only, not listing).

use std::{
    ffi::CString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context};

use crate::{config::Config, kernel::bpffs, lock};

/// What `prepare` did, one line each (printed for the journal).
pub fn prepare(cfg: &Config, owner: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut done = Vec::new();
    bpffs::ensure(&cfg.pin_dir)?;
    done.push(format!("{} is on bpffs", cfg.pin_dir.display()));
    let Some(owner) = owner else {
        return Ok(done);
    };
    let (uid, gid) = user(owner)?;
    // The bpffs root is 0700 when systemd or we mounted it: the user needs
    // to pass through it to reach its own directory.
    for dir in ancestors_on_bpffs(&cfg.pin_dir)? {
        let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 {
            set_mode(&dir, mode | 0o001)?;
            done.push(format!(
                "{} traversable by others (mode {:o}; not listable)",
                dir.display(),
                mode | 0o001
            ));
        }
    }
    let pins = chown_tree(&cfg.pin_dir, uid, gid)?;
    set_mode(&cfg.pin_dir, 0o700)?;
    done.push(format!(
        "{} and {pins} entries under it owned by {owner}",
        cfg.pin_dir.display()
    ));
    // Where the daemon writes: its lock, its state and its events file.
    let lock_dir = lock::path_for(&cfg.pin_dir)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/run/iotfence"));
    let mut dirs = vec![lock_dir, cfg.state_dir.clone()];
    dirs.extend(
        cfg.events_file
            .as_ref()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf),
    );
    for dir in dirs {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        chown_tree(&dir, uid, gid)?;
        set_mode(&dir, 0o700)?;
        done.push(format!("{} owned by {owner}", dir.display()));
    }
    Ok(done)
}

/// The uid and gid of `name`.
fn user(name: &str) -> anyhow::Result<(u32, u32)> {
    let c = CString::new(name)?;
    // SAFETY: getpwnam returns a pointer into static storage or null; the
    // fields are read before any other call can overwrite it.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        bail!("no user {name} (the package creates it: systemd-sysusers iotfence.conf)");
    }
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// `pin_dir`'s ancestors that are on bpffs, outermost first.
fn ancestors_on_bpffs(pin_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut p = pin_dir.parent();
    while let Some(dir) = p {
        if !bpffs::is_bpffs(dir)? {
            break;
        }
        out.push(dir.to_path_buf());
        p = dir.parent();
    }
    out.reverse();
    Ok(out)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {:o} {}", mode, path.display()))
}

/// Chowns `root` and everything below it (no symlinks are followed);
/// returns how many entries were below it.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> anyhow::Result<usize> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", root.display()))?;
    let mut n = 0;
    if std::fs::symlink_metadata(root)?.is_dir() {
        for e in std::fs::read_dir(root)? {
            n += 1 + chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(n)
}
