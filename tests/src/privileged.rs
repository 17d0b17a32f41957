//! Privileged tests run for real or fail loudly: never a silent skip.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

pub fn require_root() {
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run it through `cargo xtask test` as root"
    );
}

/// Keeps the calling thread on one CPU: BPF_PROG_TEST_RUN runs the
/// program where the caller runs, and per-CPU state (counters, the denial
/// cache) is then the same from one run to the next.
pub fn stay_on_cpu(cpu: usize) {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(
            rc,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, for namespaces and pin dirs.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private scratch directory, removed (with its contents) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new directory under the system's temporary directory.
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let d = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&d)?;
        Ok(Self(d))
    }
}

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pin directory on bpffs, removed (with everything pinned in it) on drop.
pub struct PinDir {
    pub path: PathBuf,
}

impl PinDir {
    pub fn new() -> Self {
        require_root();
        let path = PathBuf::from("/sys/fs/bpf/iotfence-test").join(unique("t"));
        iotfence::kernel::bpffs::ensure(&path).expect("bpffs for the test pin directory");
        Self { path }
    }
}

impl Default for PinDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = iotfence::kernel::attach::detach(&self.path);
        let _ = std::fs::remove_dir(self.path.parent().unwrap());
        // A daemon the test killed could not remove its lock file, nor
        // its journal of queries in flight beside it.
        let lock = iotfence::lock::path_for(&self.path);
        let _ = std::fs::remove_file(lock.with_extension("pending"));
        let _ = std::fs::remove_file(lock);
    }
}

/// Removes the pin directories of test processes that are gone. A fuzz
/// target holds its harness in a `static` that is never dropped, and
/// libFuzzer ends a crashing or timed-out run with `_exit`: maps pinned
/// there would otherwise stay in the kernel until reboot.
pub fn sweep_stale_pins() {
    let root = std::path::Path::new("/sys/fs/bpf/iotfence-test");
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix('t')
            .and_then(|r| r.split('x').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = iotfence::kernel::attach::detach(&e.path());
            }
        }
    }
}

/// Detaches `pins` when the process exits normally or panics (libFuzzer's
/// own exits skip Rust destructors of statics).
pub fn remove_pins_at_exit(pins: &std::path::Path) {
    static PINS: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    if PINS.set(pins.to_path_buf()).is_err() {
        return;
    }
    extern "C" fn at_exit() {
        if let Some(p) = PINS.get() {
            let _ = iotfence::kernel::attach::detach(p);
        }
    }
    unsafe { libc::atexit(at_exit) };
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        at_exit();
        previous(info);
    }));
}
