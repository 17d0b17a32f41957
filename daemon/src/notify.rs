//! The service manager's notification protocol (sd_notify(3)), spoken
//! directly (one datagram per state): `READY=1` once enforcing and serving,
//! `WATCHDOG=1` while the main loop turns and DNS learning beats,
//! `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` at shutdown.
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call is a no-op.

use std::{
    os::{
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr, UnixDatagram},
    },
    time::Duration,
};

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names (a path, or `@name` in the
    /// abstract namespace).
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|s| {
            let bytes = s.as_encoded_bytes();
            let addr = match bytes.strip_prefix(b"@") {
                Some(name) => SocketAddr::from_abstract_name(name),
                None => SocketAddr::from_pathname(std::path::Path::new(&s)),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(sock), Ok(addr)) => Some((sock, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %e, "NOTIFY_SOCKET is set but unusable: the service manager will not hear from the daemon");
                    None
                }
            }
        });
        Self { target }
    }

    /// Sends `state` (newline-separated `KEY=value` assignments).
    pub fn send(&self, state: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
                tracing::warn!(error = %e, state, "notifying the service manager");
            }
        }
    }
}

/// Half the watchdog timeout the manager set for this process
/// (`$WATCHDOG_USEC`, for `$WATCHDOG_PID` when given): how often to ping.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_reach_the_socket_the_environment_names() {
        let dir = std::env::temp_dir().join(format!("iotfence-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = Notifier {
            target: Some((
                UnixDatagram::unbound().unwrap(),
                SocketAddr::from_pathname(&path).unwrap(),
            )),
        };
        n.send("READY=1\nSTATUS=enforcing");
        let mut buf = [0u8; 64];
        let len = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=enforcing");
        // Unset: nothing is sent and nothing fails.
        Notifier { target: None }.send("READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
