//! iotfence: per-device egress allowlists for IoT networks, enforced by XDP
//! or TC programs on the IoT-facing interface.

pub mod caps;
pub mod clock;
pub mod config;
pub mod diag;
pub mod dns;
pub mod events;
pub mod exit;
pub mod explain;
pub mod host;
pub mod kernel;
pub mod learn;
pub mod links;
pub mod lock;
pub mod metrics;
pub mod mud;
pub mod notify;
pub mod policy;
pub mod prepare;
pub mod private;
pub mod run;
pub mod watch;
