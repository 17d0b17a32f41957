//! The control token: `/learn` changes what a device may reach, so unlike
//! the read-only endpoints it needs proof that the caller may read the
//! daemon's state directory (root, or the daemon's own user). The daemon
//! writes a fresh random token there (0600) at every start; `iotfence
//! learn` reads it and sends it as a bearer token.

use std::path::{Path, PathBuf};

use anyhow::Context;

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("control.token")
}

/// A new token, written to the state directory.
pub fn create(state_dir: &Path) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    // SAFETY: getrandom writes at most `len` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    anyhow::ensure!(
        n == bytes.len() as isize,
        "getrandom: {}",
        std::io::Error::last_os_error()
    );
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::private::write_atomic(&path(state_dir), format!("{token}\n").as_bytes())
        .context("writing the control token")?;
    Ok(token)
}

/// The running daemon's token, for a client.
pub fn read(state_dir: &Path) -> anyhow::Result<String> {
    let p = path(state_dir);
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {} (learning needs root or the daemon's user, and a daemon that has started)",
            p.display()
        )
    })?;
    Ok(text.trim().to_string())
}

/// Compares in constant time (the token is a secret).
pub fn matches(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_written_token_reads_back_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("iotf-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = super::create(&dir).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(super::read(&dir).unwrap(), t);
        let mode = std::fs::metadata(super::path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            super::matches(&t, &t)
                && !super::matches(&t, &t[1..])
                && !super::matches(&t, &"0".repeat(64))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
