//! Where an address is: which prefix covers it, and whether the lab
//! serves it.

use std::net::{IpAddr, Ipv4Addr};

use crate::lab::{ROUTER_IOT_IP, SERVER_A, SERVER_A6, SERVER_B};

pub fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

/// `a` lies in `net`/`len` (same family).
pub fn covers(net: IpAddr, len: u8, a: IpAddr) -> bool {
    let ((n, w), (x, wx)) = (bits(net), bits(a));
    let shift = u32::from(w.saturating_sub(len));
    w == wx && n.checked_shr(shift).unwrap_or(0) == x.checked_shr(shift).unwrap_or(0)
}

pub fn in_cidr(a: IpAddr, cidr: &str) -> bool {
    let (n, l) = cidr.split_once('/').unwrap();
    covers(n.parse().unwrap(), l.parse().unwrap(), a)
}

/// Where a static destination is: what may be probed, and why not.
pub enum Place {
    /// Served by the lab's internet namespace.
    Lab,
    /// DHCP and DNS to the router, broadcast, multicast: the `dhcp`/`dns`
    /// blocks, exercised by every lab test already.
    Infrastructure,
    /// Skipped, with the reason.
    Skip(&'static str),
}

pub fn place(a: IpAddr) -> Place {
    let lab_served = in_cidr(a, crate::lab::ANY_V4)
        || in_cidr(a, crate::lab::ANY_V6)
        || [SERVER_A, SERVER_B, SERVER_A6].contains(&a.to_string().as_str());
    if a.to_string() == ROUTER_IOT_IP || a.is_multicast() || a == Ipv4Addr::BROADCAST {
        Place::Infrastructure
    } else if in_cidr(a, "192.0.2.0/24") || in_cidr(a, "2001:db8:1::/64") {
        Place::Skip("on the IoT segment: switched between devices, never through the router")
    } else if !["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
        .iter()
        .any(|c| in_cidr(a, c))
    {
        Place::Skip("not a documentation address: the test never sends to it")
    } else if lab_served {
        Place::Lab
    } else {
        Place::Skip("a documentation address the lab does not serve")
    }
}

/// The address probed for a prefix: itself, or its first host.
pub fn representative(net: IpAddr, len: u8) -> IpAddr {
    let (n, w) = bits(net);
    let n = if len < w { n + 1 } else { n };
    match net {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(n.into()),
    }
}
