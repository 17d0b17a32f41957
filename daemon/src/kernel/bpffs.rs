//! The BPF filesystem that holds iotfence's pins. Routers with systemd mount
//! it at boot; where it is missing we mount it the same way.

use std::{ffi::CString, io, path::Path};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Makes sure `pin_dir` lies on a bpffs: mounts one at `/sys/fs/bpf` when the
/// pin directory is below it and nothing is mounted there yet.
pub fn ensure(pin_dir: &Path) -> anyhow::Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if pin_dir.starts_with(root) && !is_bpffs(root)? {
        let src = CString::new("bpffs")?;
        let target = CString::new("/sys/fs/bpf")?;
        let fstype = CString::new("bpf")?;
        let mode = CString::new("mode=0700")?;
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                mode.as_ptr().cast(),
            )
        };
        if rc != 0 {
            anyhow::bail!(
                "mounting bpffs at /sys/fs/bpf: {}",
                io::Error::last_os_error()
            );
        }
        tracing::info!("mounted bpffs at /sys/fs/bpf");
    }
    std::fs::create_dir_all(pin_dir)?;
    let mut probe = pin_dir.to_path_buf();
    while !probe.exists() {
        probe.pop();
    }
    if !is_bpffs(pin_dir)? {
        anyhow::bail!(
            "{} is not on a bpf filesystem; pins there would not survive the daemon",
            pin_dir.display()
        );
    }
    Ok(())
}
