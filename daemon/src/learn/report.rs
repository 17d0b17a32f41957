//! What a learning session saw, as the daemon hands it to `iotfence learn`
//! (JSON on `/learn`) and as the draft is rendered from: plain data with
//! wall-clock times, sorted, so one observation renders one draft.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Report {
    /// The device learned (its name in the policy).
    pub device: String,
    /// The profile it has outside learning (and returned to).
    pub profile: String,
    /// Which daemon observed it: host name and pin directory.
    pub daemon: String,
    /// When learning started (RFC 3339, UTC).
    pub started: String,
    /// What was asked for, and how long it actually observed.
    pub requested_seconds: u64,
    pub observed_seconds: u64,
    /// `running`, `deadline` (ran its course) or `stopped` (the client
    /// ended it early: interrupted).
    pub state: String,
    /// Every name a DNS answer to the device named, with its addresses.
    pub names: Vec<NameSeen>,
    /// Every (address, protocol, port) the device sent a flow to.
    pub destinations: Vec<DestSeen>,
    /// Names and destinations not recorded because a cap was reached
    /// (`observe::MAX_NAMES`, `observe::MAX_DESTINATIONS`).
    pub names_over_cap: u64,
    pub destinations_over_cap: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NameSeen {
    /// Lower case, without the trailing dot.
    pub name: String,
    pub addresses: Vec<IpAddr>,
    /// Answers naming it (a cached answer counts too).
    pub answers: u64,
    pub first: String,
    pub last: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DestSeen {
    pub addr: IpAddr,
    /// IP protocol number.
    pub proto: u8,
    /// Destination port (TCP, UDP, SCTP); 0 for protocols without ports.
    pub port: u16,
    /// Flows the device opened to it (its first packets, reported).
    pub flows: u64,
    pub first: String,
    pub last: String,
    /// The names DNS gave the device for `addr` before it went there;
    /// empty: a literal address (no answer named it).
    pub names: Vec<String>,
}
