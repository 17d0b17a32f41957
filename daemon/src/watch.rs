//! Reload on policy file changes: inotify on the directories that hold the
//! policy's files, so editors that save by writing a new file and renaming
//! it over the old one (vim, most IDEs) are seen as well as in-place writes.
//! Events are debounced by the caller; any change to a `.yaml`/`.yml` file
//! in a watched directory counts.

use std::{
    collections::{BTreeSet, HashMap},
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use tokio::io::unix::AsyncFd;

const MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE;

pub struct Watcher {
    fd: AsyncFd<OwnedFd>,
    watches: HashMap<i32, PathBuf>,
}

/// The directories to watch for a policy read from `entry` and `files`.
pub fn dirs(entry: &Path, files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if entry.is_dir() {
        out.insert(entry.to_path_buf());
    }
    for f in files {
        if let Some(d) = f.parent() {
            out.insert(if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d.to_path_buf()
            });
        }
    }
    out
}

impl Watcher {
    pub fn new() -> io::Result<Self> {
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh inotify fd, owned from here on by the
        // OwnedFd inside the AsyncFd, which deregisters before closing it.
        let fd = unsafe { AsyncFd::register(OwnedFd::from_raw_fd(raw)) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            fd,
            watches: HashMap::new(),
        })
    }

    /// Watches exactly `dirs` (dropping watches no longer needed).
    pub fn watch(&mut self, dirs: &BTreeSet<PathBuf>) {
        let fd = self.fd.get_ref().as_raw_fd();
        self.watches.retain(|wd, d| {
            let keep = dirs.contains(d);
            if !keep {
                unsafe { libc::inotify_rm_watch(fd, *wd) };
            }
            keep
        });
        for d in dirs {
            if self.watches.values().any(|w| w == d) {
                continue;
            }
            let Ok(c) = CString::new(d.as_os_str().as_bytes()) else {
                continue;
            };
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), MASK) };
            if wd < 0 {
                tracing::warn!(dir = %d.display(), error = %io::Error::last_os_error(), "cannot watch policy directory; SIGHUP still reloads");
            } else {
                self.watches.insert(wd, d.clone());
            }
        }
    }

    /// Waits until a policy-looking file in a watched directory changed.
    pub async fn changed(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 4096];
            let mut relevant = false;
            loop {
                let n = unsafe {
                    libc::read(
                        guard.get_inner().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                    )
                };
                if n <= 0 {
                    break;
                }
                relevant |= any_policy_file(&buf[..n as usize]);
            }
            guard.clear_ready();
            if relevant {
                return Ok(());
            }
        }
    }
}

/// Whether a buffer of inotify events names a `.yaml` / `.yml` file.
fn any_policy_file(mut buf: &[u8]) -> bool {
    const HDR: usize = std::mem::size_of::<libc::inotify_event>();
    let mut found = false;
    while buf.len() >= HDR {
        let len = u32::from_ne_bytes(buf[12..16].try_into().unwrap()) as usize;
        let name = buf.get(HDR..HDR + len).unwrap_or(&[]);
        let name = name.split(|b| *b == 0).next().unwrap_or(&[]);
        if name.ends_with(b".yaml") || name.ends_with(b".yml") {
            found = true;
        }
        buf = buf.get(HDR + len..).unwrap_or(&[]);
    }
    found
}
