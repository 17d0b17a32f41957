//! Writes a compiled policy into the maps as one atomic change: every entry
//! is written under the inactive generation, then one write to the config
//! map flips the generation the programs use, then the old generation's
//! entries are removed. A packet reads the generation once, so it is judged
//! entirely by the old or entirely by the new policy.

use std::time::Duration;

use anyhow::Context;
use aya::maps::{lpm_trie::Key, LpmTrie, MapData};
use iotfence_common::{
    consts::CONFIG_READY,
    keys::{device_scope, rule_scope, SCOPE_BITS},
    Config as KConfig, DeviceInfo, Lpm4, Lpm6, MacKey,
};
use ipnet::IpNet;

use crate::{compile::Compiled, config::Config, datapath::Maps};

/// The generation currently enforced, if a policy was ever applied.
pub fn active_generation(maps: &Maps) -> anyhow::Result<Option<u8>> {
    let c = maps.config.get(&0, 0)?;
    Ok((c.flags & CONFIG_READY != 0).then_some((c.generation & 1) as u8))
}

pub fn kernel_config(cfg: &Config, generation: u8) -> KConfig {
    let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
    KConfig {
        generation: generation as u32,
        flags: CONFIG_READY,
        tcp_idle_ns: ns(cfg.idle.tcp),
        udp_idle_ns: ns(cfg.idle.udp),
        icmp_idle_ns: ns(cfg.idle.icmp),
        other_idle_ns: ns(cfg.idle.other),
        event_interval_ns: ns(cfg.event_interval),
        event_burst_ns: ns(cfg.event_interval) * (cfg.event_burst.saturating_sub(1)) as u64,
    }
}

/// Applies `policy`; returns the new generation.
pub fn apply(maps: &mut Maps, cfg: &Config, policy: &Compiled) -> anyhow::Result<u8> {
    let old = active_generation(maps)?;
    let new = match old {
        Some(g) => g ^ 1,
        None => 0,
    };
    // Leftovers of an apply that died half-way would otherwise mix in.
    clear_generation(maps, new)?;
    write_generation(maps, policy, new).context("writing the new policy generation")?;
    maps.config
        .set(0, kernel_config(cfg, new), 0)
        .context("switching generation")?;
    if old.is_some() {
        clear_generation(maps, new ^ 1)?;
    }
    Ok(new)
}

fn device_info(policy: &Compiled, id: u32, profile: u16) -> DeviceInfo {
    DeviceInfo {
        device: id,
        profile,
        mode: policy.profiles[profile as usize].mode,
        _pad: 0,
    }
}

fn write_generation(maps: &mut Maps, policy: &Compiled, g: u8) -> anyhow::Result<()> {
    maps.default_device
        .set(g as u32, device_info(policy, 0, policy.default_profile), 0)?;
    for d in &policy.devices {
        let info = device_info(policy, d.id, d.profile);
        if let Some(mac) = d.mac {
            maps.device_by_mac.insert(
                MacKey {
                    generation: g,
                    _pad: 0,
                    mac,
                },
                info,
                0,
            )?;
        }
        for net in &d.nets {
            insert_net(
                &mut maps.device_by_ip4,
                &mut maps.device_by_ip6,
                device_scope(g),
                net,
                info,
            )?;
        }
    }
    for (id, p) in policy.profiles.iter().enumerate() {
        let scope = rule_scope(g, id as u16);
        for (net, rules) in &p.egress {
            insert_net(&mut maps.egress4, &mut maps.egress6, scope, net, *rules)?;
        }
        for (net, rules) in &p.inbound {
            insert_net(&mut maps.inbound4, &mut maps.inbound6, scope, net, *rules)?;
        }
    }
    Ok(())
}

fn insert_net<V: aya::Pod>(
    v4: &mut LpmTrie<MapData, Lpm4, V>,
    v6: &mut LpmTrie<MapData, Lpm6, V>,
    scope: [u8; 4],
    net: &IpNet,
    value: V,
) -> anyhow::Result<()> {
    let bits = SCOPE_BITS + net.prefix_len() as u32;
    match net {
        IpNet::V4(n) => v4.insert(
            &Key::new(
                bits,
                Lpm4 {
                    scope,
                    addr: n.addr().octets(),
                },
            ),
            value,
            0,
        )?,
        IpNet::V6(n) => v6.insert(
            &Key::new(
                bits,
                Lpm6 {
                    scope,
                    addr: n.addr().octets(),
                },
            ),
            value,
            0,
        )?,
    }
    Ok(())
}

fn clear_generation(maps: &mut Maps, g: u8) -> anyhow::Result<()> {
    let macs: Vec<MacKey> = maps
        .device_by_mac
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.generation == g)
        .collect();
    for k in macs {
        maps.device_by_mac.remove(&k)?;
    }
    clear_lpm(&mut maps.device_by_ip4, &mut maps.device_by_ip6, g)?;
    clear_lpm(&mut maps.egress4, &mut maps.egress6, g)?;
    clear_lpm(&mut maps.inbound4, &mut maps.inbound6, g)?;
    Ok(())
}

fn clear_lpm<V: aya::Pod>(
    v4: &mut LpmTrie<MapData, Lpm4, V>,
    v6: &mut LpmTrie<MapData, Lpm6, V>,
    g: u8,
) -> anyhow::Result<()> {
    let k4: Vec<Key<Lpm4>> = v4
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.data().scope[0] == g)
        .collect();
    for k in k4 {
        v4.remove(&k)?;
    }
    let k6: Vec<Key<Lpm6>> = v6
        .keys()
        .filter_map(Result::ok)
        .filter(|k| k.data().scope[0] == g)
        .collect();
    for k in k6 {
        v6.remove(&k)?;
    }
    Ok(())
}
