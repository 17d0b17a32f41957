//! DNS learning end to end: Debian's dnsmasq as the router's resolver, real
//! devices in namespaces, iotfence holding answers until their addresses are
//! learned. Outcomes are read from the drop counters and the learned map.
//!
//! One file per concern: the first packet after a lookup, which answers
//! teach what, how long learned entries live (expiry, restarts, reloads),
//! the daemon's state files, and a flood from another device.

use std::{net::IpAddr, time::Duration};

mod answers;
mod crash;
mod first_packet;
mod flood;
mod learn;
mod lifetime;
mod redirect;
mod state;

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn connect(ns: &iotfence_tests::lab::Netns, addr: IpAddr) -> bool {
    ns.connect(&addr.to_string(), 443, Duration::from_secs(1))
}
