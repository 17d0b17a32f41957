//! Process exit codes (sysexits.h), distinct per failure class so service
//! managers and scripts can tell a bad configuration from a broken host.

/// Command-line usage error.
pub const USAGE: i32 = 64;
/// The configuration or policy is invalid; nothing was changed.
pub const DATA: i32 = 65;
/// The kernel or system refused (attach, load, mount).
pub const OS: i32 = 71;
/// Not permitted (needs root / CAP_BPF + CAP_NET_ADMIN).
pub const NOPERM: i32 = 77;
/// The daemon could not be reached (`iotfence status`).
pub const UNAVAILABLE: i32 = 69;
/// Another daemon manages this pin directory; retry when it has stopped.
pub const TEMPFAIL: i32 = 75;
/// A configured resource cannot be used (e.g. the metrics address is taken).
pub const CONFIG: i32 = 78;

/// Why `iotfence run` could not start, each with its exit code and a
/// stable name.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The daemon lock is held (another daemon runs).
    #[error("{0:#}")]
    Locked(anyhow::Error),
    /// The metrics address could not be bound.
    #[error("binding the metrics address {addr}: {source}")]
    MetricsAddress {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The kernel or system refused (features, load, attach, bpffs).
    #[error("{0:#}")]
    Kernel(#[from] anyhow::Error),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Locked(_) => TEMPFAIL,
            StartError::MetricsAddress { .. } => CONFIG,
            StartError::Kernel(_) => OS,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            StartError::Locked(_) => "locked",
            StartError::MetricsAddress { .. } => "metrics_address",
            StartError::Kernel(_) => "kernel",
        }
    }
}
