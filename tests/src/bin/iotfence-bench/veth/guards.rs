//! What tears the path's state down on drop: a running load, a filter.

use std::{
    os::fd::OwnedFd,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
};

use anyhow::bail;
use iotfence_tests::{lab::Daemon, privileged::PinDir, reference::Reference};

/// The generator at work; stopped (and joined) on drop, also on an early
/// error.
pub struct Load {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: Option<thread::JoinHandle<anyhow::Result<()>>>,
}

impl Load {
    /// Stops the generator and reports its error, if it failed.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Err(_)) => bail!("generator panicked"),
            Some(Ok(r)) => r,
            None => Ok(()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A filter in place; removed on drop.
pub enum Applied {
    Nothing,
    /// A BPF link, detached when its fd closes (held, never read).
    Link {
        _link: OwnedFd,
    },
    /// The reference program's link, and the program with its maps.
    Reference {
        _link: OwnedFd,
        _reference: Reference,
    },
    Nft {
        ns: String,
        family: &'static str,
    },
    // Field order: the daemon stops before the pins (and the attachment)
    // go.
    Iotfence {
        daemon: Daemon,
        pins: PinDir,
    },
}

impl Drop for Applied {
    fn drop(&mut self) {
        match self {
            Applied::Nothing | Applied::Link { .. } | Applied::Reference { .. } => {}
            Applied::Nft { ns, family } => {
                let _ = Command::new("ip")
                    .args(["netns", "exec", ns, "nft", "delete", "table", family])
                    .arg("iotfence_bench")
                    .status();
            }
            Applied::Iotfence { daemon, .. } => {
                let _ = daemon.terminate();
            }
        }
    }
}
