//! One daemon per pin directory: an flock'ed file under /run names the
//! holder, and `iotfence detach` refuses while a daemon holds it.

use std::{
    fs::File,
    io::{self, Read, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

pub fn path_for(pin_dir: &Path) -> PathBuf {
    let name: String = pin_dir
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    PathBuf::from("/run/iotfence").join(format!("{name}.lock"))
}

/// Takes the lock, or says which process holds it.
pub fn acquire(pin_dir: &Path) -> anyhow::Result<DaemonLock> {
    let path = path_for(pin_dir);
    std::fs::create_dir_all(path.parent().unwrap())?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        anyhow::bail!(
            "another iotfence daemon (pid {}) manages {}",
            pid.trim(),
            pin_dir.display()
        );
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(DaemonLock { _file: file, path })
}

/// The pid of the daemon holding the lock, if any.
pub fn holder(pin_dir: &Path) -> io::Result<Option<String>> {
    let path = path_for(pin_dir);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(None);
    }
    let mut pid = String::new();
    file.read_to_string(&mut pid)?;
    Ok(Some(pid.trim().to_string()))
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
