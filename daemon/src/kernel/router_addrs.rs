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
    dns::{REDIRECT_TO_V4, REDIRECT_TO_V6},
    keys::addr_key,
};

use crate::{config::Config, host::router_addresses, kernel::load::Datapath};

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
        write_redirect_targets(dp, cfg)?;
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

/// `dns.redirect`: queries of each family go to the first configured
/// resolver of that family (none: not redirected, judged as they are).
fn write_redirect_targets(dp: &mut Datapath, cfg: &Config) -> anyhow::Result<()> {
    for (slot, v4) in [(REDIRECT_TO_V4, true), (REDIRECT_TO_V6, false)] {
        let to = cfg
            .resolvers
            .iter()
            .find(|r| cfg.dns.redirect && r.is_ipv4() == v4)
            .map_or([0; 16], |r| addr_key(*r));
        if dp.maps.redirect_to.get(&slot, 0)? != to {
            dp.maps.redirect_to.set(slot, to, 0)?;
        }
    }
    Ok(())
}

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
