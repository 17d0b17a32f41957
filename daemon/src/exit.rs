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
