//! Loading the embedded eBPF object: its programs, and its maps opened from
//! (or created at) their pins. Attaching is in `attach`.
//!
//! Layout under the pin directory (`/sys/fs/bpf/iotfence` by default):
//! `maps/iotf1_*` (the names carry the layout version), `links/<ifname>_<hook>`
//! and `progs/<program>`. A pinned link keeps its program attached after the
//! daemon exits; a restarted daemon loads the new programs against the same
//! maps and swaps them into the existing links with one `bpf_link_update`
//! each, so there is no moment without enforcement. When the pinned
//! programs are this build's, loaded with the same settings against these
//! very maps, it adopts them instead of verifying them again (`verified`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use aya::{
    maps::{MapData, RingBuf},
    programs::{ProgramInfo, SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use iotfence_common::consts::{features, map_names as names, prog_names, DEVICE_MAPS};

use super::{
    apply::{self, Written},
    grants::Grants,
    maps::{check_adopted, pinned_definitions, replace_rebuilt, DnsMaps, Maps},
    object::{take, BPF_OBJECT},
    probe::Kernel,
    verified::{self, Adopted, Refused},
};
use crate::config::DnsSettings;

pub struct Datapath {
    /// The object with its maps; its programs are loaded unless `adopted`.
    pub ebpf: Ebpf,
    /// The pinned programs, when adopted instead of loaded.
    pub adopted: Option<Adopted>,
    /// Why the programs were loaded instead (None: adopted).
    pub not_adopted: Option<Refused>,
    /// What the loaded programs are, for the record beside their pins.
    pub fingerprint: u64,
    pub maps: Maps,
    /// The policy entries this process wrote last (see `apply`).
    pub written: Written,
    pub events: Option<RingBuf<MapData>>,
    /// What DNS learning owns (see `DnsMaps`), until its thread takes it.
    pub dns: Option<DnsMaps>,
    pub pin_dir: PathBuf,
    /// What the kernel supports (probed at load).
    pub kernel: Kernel,
}

impl Datapath {
    /// Loads the programs and opens (or creates and pins) the maps under
    /// `pin_dir/maps`, a new learned map with room for `dns.max_entries`
    /// (an adopted one keeps its size), new device-indexed maps for
    /// `devices` devices (`max_devices`; an adopted one must have room for
    /// them), each device's DNS query budget from `dns`. The programs use
    /// the optional features this kernel has (`probe`). Nothing is attached
    /// yet.
    pub fn load(pin_dir: &Path, dns: &DnsSettings, devices: u32) -> anyhow::Result<Self> {
        Self::load_for(pin_dir, dns, devices, Kernel::probe())
    }

    /// `load`, for a kernel the caller has probed already.
    pub fn load_for(
        pin_dir: &Path,
        dns: &DnsSettings,
        devices: u32,
        kernel: Kernel,
    ) -> anyhow::Result<Self> {
        if BPF_OBJECT.is_empty() {
            anyhow::bail!("this build embeds no eBPF object (built with IOTFENCE_SKIP_EBPF=1); build it without that variable");
        }
        let learned_entries = dns.max_entries as u32;
        let mut feature_bits = kernel.feature_bits();
        if dns.redirect {
            feature_bits |= features::DNS_REDIRECT;
        }
        let interval_ns = 1_000_000_000 / dns.queries_per_second.max(1);
        let burst_ns = interval_ns * dns.query_burst;
        let map_dir = super::pins::map_dir(pin_dir);
        std::fs::create_dir_all(&map_dir)
            .with_context(|| format!("creating {}", map_dir.display()))?;
        // The device capacity is not fingerprinted: it only sizes maps, and
        // adopted programs use exactly the pinned maps (`verified::adopt`
        // compares ids), whose room `check_adopted` checks.
        let fingerprint = verified::fingerprint(
            BPF_OBJECT,
            &[u64::from(feature_bits), interval_ns, burst_ns],
        );
        // The object's pinned maps, parsed once for the checks below.
        let defined = pinned_definitions()?;
        replace_rebuilt(&map_dir, &defined)?;
        let created = verified::missing_map(&map_dir, &defined);
        let mut loader = EbpfLoader::new();
        loader
            .default_map_pin_directory(&map_dir)
            .map_max_entries(names::LEARNED, learned_entries)
            .override_global(features::GLOBAL, &feature_bits, true)
            .override_global(features::QUERY_INTERVAL, &interval_ns, true)
            .override_global(features::QUERY_BURST, &burst_ns, true);
        for (name, per_device) in DEVICE_MAPS {
            loader.map_max_entries(name, per_device * devices);
        }
        let mut ebpf = loader.load(BPF_OBJECT).context("loading the eBPF object")?;
        check_adopted(&ebpf, &defined, devices)?;
        let progs = super::pins::prog_dir(pin_dir);
        let adopted = match created {
            Some(map) => Err(Refused::MapCreated(map)),
            None => verified::adopt(&progs, fingerprint, &ebpf, &defined),
        };
        let (adopted, not_adopted) = match adopted {
            Ok(a) => {
                tracing::info!(
                    fingerprint = format_args!("{fingerprint:016x}"),
                    "adopting the pinned programs: this kernel verified them for this build and these maps"
                );
                (Some(a), None)
            }
            Err(why) => {
                // Said only when there were programs to adopt: a first
                // start has none.
                if progs.join(prog_names::XDP).exists() {
                    tracing::info!(reason = ?why, "loading the programs anew");
                }
                verified::forget(&progs)?;
                load_programs(&mut ebpf)?;
                (None, Some(why))
            }
        };
        let grants = Grants::take(&mut ebpf)?;
        let maps = Maps::take(&mut ebpf, grants.clone())?;
        let events = Some(take(&mut ebpf, names::EVENTS)?);
        let dns = Some(DnsMaps::take(&mut ebpf, grants)?);
        Ok(Self {
            ebpf,
            adopted,
            not_adopted,
            fingerprint,
            maps,
            written: Default::default(),
            events,
            dns,
            pin_dir: pin_dir.to_path_buf(),
            kernel,
        })
    }

    /// Writes `policy` into the maps (see `apply::apply`); returns the
    /// generation now enforced.
    pub fn apply(
        &mut self,
        cfg: &crate::config::Config,
        policy: &crate::policy::compile::Compiled,
    ) -> anyhow::Result<u8> {
        apply::apply(&mut self.maps, &mut self.written, cfg, policy)
    }

    /// The XDP judge, loaded or adopted (attaching; BPF_PROG_TEST_RUN in
    /// tests and benchmarks).
    pub fn xdp(&self) -> anyhow::Result<&Xdp> {
        if let Some(a) = &self.adopted {
            return Ok(&a.xdp);
        }
        Ok(self
            .ebpf
            .program(prog_names::XDP)
            .context("program missing")?
            .try_into()?)
    }

    pub fn xdp_mut(&mut self) -> anyhow::Result<&mut Xdp> {
        if let Some(a) = &mut self.adopted {
            return Ok(&mut a.xdp);
        }
        Ok(self
            .ebpf
            .program_mut(prog_names::XDP)
            .context("program missing")?
            .try_into()?)
    }

    /// The TC program `name`, loaded or adopted.
    pub fn tc(&self, name: &str) -> anyhow::Result<&SchedClassifier> {
        if let Some(a) = &self.adopted {
            return a.tc(name).context("program missing");
        }
        Ok(self
            .ebpf
            .program(name)
            .context("program missing")?
            .try_into()?)
    }

    pub fn tc_mut(&mut self, name: &str) -> anyhow::Result<&mut SchedClassifier> {
        if let Some(a) = &mut self.adopted {
            return a.tc_mut(name).context("program missing");
        }
        Ok(self
            .ebpf
            .program_mut(name)
            .context("program missing")?
            .try_into()?)
    }

    /// The kernel's view of program `name` (`prog_names`).
    pub fn program_info(&self, name: &str) -> anyhow::Result<ProgramInfo> {
        Ok(if name == prog_names::XDP {
            self.xdp()?.info()?
        } else {
            self.tc(name)?.info()?
        })
    }
}

/// Loads (verifies) every program of the object.
fn load_programs(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let xdp: &mut Xdp = ebpf
        .program_mut(prog_names::XDP)
        .context("program missing")?
        .try_into()?;
    xdp.load()
        .with_context(|| format!("verifier rejected {}", prog_names::XDP))?;
    for name in [
        prog_names::TC_INGRESS,
        prog_names::TC_EGRESS,
        prog_names::TC_QUERIES,
    ] {
        let p: &mut SchedClassifier = ebpf
            .program_mut(name)
            .context("program missing")?
            .try_into()?;
        p.load()
            .with_context(|| format!("verifier rejected {name}"))?;
    }
    Ok(())
}
