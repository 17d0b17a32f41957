//! Validates a policy against the configuration and compiles it into what
//! the maps hold. Every problem is collected (not just the first) with its
//! file and location; nothing here touches the kernel.
//!
//! A policy may span files (see `sources`): profiles, devices, variables
//! and requirements from every file form one namespace.

use std::{
    borrow::Borrow,
    path::{Path, PathBuf},
};

use iotfence_common::{PortRule, RuleSet};
use ipnet::IpNet;

use crate::{
    config::Config,
    diag::Diagnostic,
    policy::{
        pattern::Pattern,
        sources::{self, Source},
    },
};

mod addr;
mod blocks;
mod device;
mod fold;
mod origin;
mod rule;
mod steps;
mod vars;

#[cfg(test)]
mod capacity_tests;

pub use origin::RuleOrigin;
/// A rule's protocol and port (or ICMP type) ranges, as the compiler reads
/// them (`mud export` writes them as ACEs).
pub use rule::service;

/// Name of the profile built in for unknown devices.
pub const BUILTIN_DEFAULT: &str = "default";

/// The site variable the built-in `ntp` block sends to.
pub const NTP_VAR: &str = "ntp_servers";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    /// Index = profile id.
    pub profiles: Vec<CompiledProfile>,
    pub default_profile: u16,
    /// Device ids start at 1; 0 is "unknown device".
    pub devices: Vec<CompiledDevice>,
    /// Lints that do not reject the policy.
    pub warnings: Vec<Diagnostic>,
    /// Every file the policy was read from (watched for changes).
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledProfile {
    pub name: String,
    pub mode: u8,
    /// Longest-prefix-ready entries: each prefix carries the rules of every
    /// prefix of the profile that covers it.
    pub egress: Vec<(IpNet, RuleSet)>,
    pub inbound: Vec<(IpNet, RuleSet)>,
    /// Destinations named by domain: allowed once DNS answers name them.
    pub domains: Vec<DomainRule>,
    pub description: Option<String>,
    pub source: Option<String>,
    pub limitations: Vec<String>,
    /// Each rule as written, with what it expanded to (for `explain`).
    pub origins: Vec<RuleOrigin>,
    /// The stand-in profile of a device being learned (`learn::view`):
    /// audits everything, and the kernel reports every flow
    /// (`DEVICE_LEARNING`). Never from a policy file.
    pub learning: bool,
}

/// A domain pattern and what it allows for the addresses it resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    pub pattern: Pattern,
    pub rules: Vec<PortRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledDevice {
    pub id: u32,
    pub name: String,
    pub profile: u16,
    pub mac: Option<[u8; 6]>,
    pub nets: Vec<IpNet>,
    /// `match: mac-or-ip`: MAC and addresses each identify the device on
    /// their own (the default, with both given, needs both).
    pub mac_or_ip: bool,
}

impl Compiled {
    pub fn device_name(&self, id: u32) -> &str {
        self.devices
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.name.as_str())
            .unwrap_or("unknown")
    }

    /// True when some profile names domains, so DNS answers must be learned.
    pub fn learns(&self) -> bool {
        self.profiles.iter().any(|p| !p.domains.is_empty())
    }

    pub fn profile_name(&self, id: u16) -> &str {
        self.profiles
            .get(id as usize)
            .map(|p| p.name.as_str())
            .unwrap_or("unknown")
    }
}

/// Reads, parses, validates and compiles the policy of `cfg`.
pub fn load(cfg: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    load_path(&cfg.policy, cfg)
}

/// Reads a policy file or directory with its includes, and compiles it.
pub fn load_path(entry: &Path, cfg: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    let sources = sources::read(entry)?;
    compile_sources(&sources, cfg)
}

/// `load`, re-parsing only the files that changed since `cache` was filled.
pub fn load_cached(cfg: &Config, cache: &mut sources::Cache) -> Result<Compiled, Vec<Diagnostic>> {
    let sources = sources::read_cached(&cfg.policy, cache)?;
    compile_sources(&sources, cfg)
}

/// Compiles one file's text (no includes are followed).
pub fn compile(path: &Path, text: &str, cfg: &Config) -> Result<Compiled, Vec<Diagnostic>> {
    let src = sources::parse(path, text)?;
    compile_sources(std::slice::from_ref(&src), cfg)
}

/// A profile before folding: rules as written, expanded.
#[derive(Clone, Default)]
struct Draft {
    mode: u8,
    egress: Vec<(IpNet, PortRule)>,
    inbound: Vec<(IpNet, PortRule)>,
    domains: Vec<DomainRule>,
    origins: Vec<RuleOrigin>,
}

/// Validates and compiles a policy read from `sources` (the entry file
/// first, then its includes) against `cfg`; every problem is collected.
pub fn compile_sources<S: Borrow<Source>>(
    sources: &[S],
    cfg: &Config,
) -> Result<Compiled, Vec<Diagnostic>> {
    let sources: Vec<&Source> = sources.iter().map(Borrow::borrow).collect();
    let mut b = steps::Build::namespace(&sources, cfg);
    b.draft_profiles();
    let default_name = b.default_profile_name();
    b.devices();
    b.builtin_default();
    b.check_counts();
    let profiles = b.fold_profiles();
    b.lint_unused_profiles();
    b.finish(profiles, &default_name)
}
