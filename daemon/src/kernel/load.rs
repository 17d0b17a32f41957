//! Loading the embedded eBPF object: its programs, and its maps opened from
//! (or created at) their pins. Attaching is in `attach`.
//!
//! Layout under the pin directory (`/sys/fs/bpf/iotfence` by default):
//! `maps/iotf1_*` (the names carry the layout version), `links/<ifname>_<hook>`
//! and `progs/<program>`. A pinned link keeps its program attached after the
//! daemon exits; a restarted daemon loads the new programs against the same
//! maps and swaps them into the existing links with one `bpf_link_update`
//! each, so there is no moment without enforcement.

use std::path::{Path, PathBuf};

use anyhow::Context;
use aya::{
    maps::{MapData, RingBuf},
    programs::{SchedClassifier, Xdp},
    Ebpf, EbpfLoader,
};
use iotfence_common::consts::{features, map_names as names, prog_names};

use super::{
    apply::{self, Written},
    grants::Grants,
    maps::{check_adopted, DnsMaps, Maps},
    object::{take, BPF_OBJECT},
    probe::Kernel,
};
use crate::config::DnsSettings;

pub struct Datapath {
    pub ebpf: Ebpf,
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
    /// (an adopted one keeps its size), each device's DNS query budget from
    /// `dns`. The programs use the optional features this kernel has
    /// (`probe`). Nothing is attached yet.
    pub fn load(pin_dir: &Path, dns: &DnsSettings) -> anyhow::Result<Self> {
        Self::load_for(pin_dir, dns, Kernel::probe())
    }

    /// `load`, for a kernel the caller has probed already.
    pub fn load_for(pin_dir: &Path, dns: &DnsSettings, kernel: Kernel) -> anyhow::Result<Self> {
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
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&map_dir)
            .map_max_entries(names::LEARNED, learned_entries)
            .override_global(features::GLOBAL, &feature_bits, true)
            .override_global(features::QUERY_INTERVAL, &interval_ns, true)
            .override_global(features::QUERY_BURST, &burst_ns, true)
            .load(BPF_OBJECT)
            .context("loading the eBPF object")?;
        check_adopted(&ebpf)?;
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
        let grants = Grants::take(&mut ebpf)?;
        let maps = Maps::take(&mut ebpf, grants.clone())?;
        let events = Some(take(&mut ebpf, names::EVENTS)?);
        let dns = Some(DnsMaps::take(&mut ebpf, grants)?);
        Ok(Self {
            ebpf,
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

    /// The program for tests and benchmarks (BPF_PROG_TEST_RUN).
    pub fn xdp(&self) -> anyhow::Result<&Xdp> {
        Ok(self
            .ebpf
            .program(prog_names::XDP)
            .context("program missing")?
            .try_into()?)
    }

    pub fn tc(&self, name: &str) -> anyhow::Result<&SchedClassifier> {
        Ok(self
            .ebpf
            .program(name)
            .context("program missing")?
            .try_into()?)
    }
}
