//! The router's own addresses, told to the kernel, and what follows from
//! them:
//! - neighbour discovery from a device to one of them is link traffic (the
//!   router solicits a device from its global address, and the answer goes
//!   there), never forwarded (`iotf1_local6`);
//! - a resolver on the router answers only through the router's stack, so
//!   the kernel drops an answer with its address that was routed in: the
//!   forgery a compromised device's accomplice sends. A resolver elsewhere
//!   cannot be told from such a forger by anything in the packet (the
//!   device chose the id and port it would be matched on): warned about,
//!   see README.md, "DNS learning".
//!
//! Addresses change without notice (DHCP, an admin), so the daemon checks
//! them again every few seconds.

use std::net::IpAddr;

use iotfence_common::{
    consts::{RESOLVER_ON_ROUTER, RESOLVER_TRUSTED},
    keys::addr_key,
};

use crate::{config::Config, kernel::load::Datapath};

/// Every address configured on this host's interfaces (this network
/// namespace).
pub fn router_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            match unsafe { (*ifa.ifa_addr).sa_family } as i32 {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        p = ifa.ifa_next;
    }
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The configured resolvers that are not addresses of this host (all of
/// them when the addresses cannot be read).
pub fn remote(resolvers: &[IpAddr]) -> Vec<IpAddr> {
    let local = router_addresses().unwrap_or_default();
    resolvers
        .iter()
        .filter(|r| !local.contains(r))
        .copied()
        .collect()
}

/// Keeps the kernel's router-address table equal to the host's IPv6
/// addresses, and its resolver table equal to the configuration, each
/// entry marked on the router or not as the host's addresses say now.
#[derive(Default)]
pub struct RouterAddrs {
    /// The remote resolvers at the last update, so a change is logged once.
    remote: Option<Vec<IpAddr>>,
}

impl RouterAddrs {
    pub fn update(&mut self, dp: &mut Datapath, cfg: &Config) -> anyhow::Result<()> {
        let local = router_addresses()?;
        let changed = sync(
            &mut dp.maps.router_addrs,
            local
                .iter()
                .filter(|a| a.is_ipv6())
                .map(|a| (addr_key(*a), 1))
                .collect(),
        )?;
        if changed {
            // Neighbour discovery to a new address of the router is allowed now.
            dp.maps.grants.bump()?;
        }
        let remote: Vec<IpAddr> = cfg
            .resolvers
            .iter()
            .filter(|r| !local.contains(r))
            .copied()
            .collect();
        let want: Vec<([u8; 16], u32)> = cfg
            .resolvers
            .iter()
            .map(|ip| {
                let flags = if remote.contains(ip) {
                    RESOLVER_TRUSTED
                } else {
                    RESOLVER_TRUSTED | RESOLVER_ON_ROUTER
                };
                (addr_key(*ip), flags)
            })
            .collect();
        sync(&mut dp.maps.resolvers, want)?;
        // The start is covered by the configuration's warnings; later,
        // each change is logged once.
        if let Some(before) = &self.remote {
            for r in remote.iter().filter(|r| !before.contains(r)) {
                tracing::warn!(resolver = %r, "resolver no longer an address of this router: answers from it are learned from wherever they come (see README, DNS learning)");
            }
            for r in before.iter().filter(|r| !remote.contains(r)) {
                tracing::info!(resolver = %r, "resolver is an address of this router: answers with its address are learned from only when the router's own stack sent them");
            }
        }
        self.remote = Some(remote);
        Ok(())
    }
}

/// Makes `map` hold exactly `want`.
/// Makes `map` hold exactly `want`; whether anything changed.
fn sync(
    map: &mut aya::maps::HashMap<aya::maps::MapData, [u8; 16], u32>,
    want: Vec<([u8; 16], u32)>,
) -> anyhow::Result<bool> {
    let mut changed = false;
    let have: Vec<[u8; 16]> = map.keys().filter_map(Result::ok).collect();
    for k in have.iter().filter(|k| !want.iter().any(|(w, _)| w == *k)) {
        map.remove(k)?;
        changed = true;
    }
    for (k, v) in &want {
        if map.get(k, 0).ok() != Some(*v) {
            map.insert(k, v, 0)?;
            changed = true;
        }
    }
    Ok(changed)
}
