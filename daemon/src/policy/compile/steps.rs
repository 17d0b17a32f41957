//! `compile_sources`, step by step: one namespace from every file, a draft
//! per profile, the default profile, devices (and their profile variants),
//! the built-in default, limits, folding, lints, ids.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use iotfence_common::{consts::MAX_PROFILES, Mode};
use serde_saphyr::Spanned;

use super::{
    blocks::{dhcp_rules, dns_rules},
    device::device,
    fold::fold,
    rule::{draft, egress_rule, parse_mode},
    vars::{check_vars, Vars},
    Compiled, CompiledDevice, CompiledProfile, Draft, BUILTIN_DEFAULT,
};
use crate::{
    config::Config,
    diag::{Diagnostic, Diags},
    policy::{
        doc::{DeviceDoc, ProfileDoc},
        sources::Source,
    },
};

/// The state of one compilation between its steps.
pub(super) struct Build<'a> {
    sources: &'a [&'a Source],
    cfg: &'a Config,
    /// Every diagnostic so far, errors and warnings.
    all: Vec<Diagnostic>,
    vars: Vars<'a>,
    /// Profiles by name, with the index of the file defining each.
    profile_docs: BTreeMap<&'a str, (usize, &'a Spanned<ProfileDoc>)>,
    default_doc: Option<(usize, &'a Spanned<String>)>,
    /// Profile names in id order: defined ones, then device variants, then
    /// the built-in default when no profile takes its name.
    names: Vec<String>,
    drafts: BTreeMap<String, Draft>,
    profiles: BTreeMap<String, CompiledProfile>,
    /// Profiles some device (or the default) uses.
    used: BTreeSet<String>,
    devices: Vec<CompiledDevice>,
    /// Each device's profile name, parallel to `devices`.
    device_profiles: Vec<String>,
}

impl<'a> Build<'a> {
    /// Variables, requirements, profiles and the default profile of every
    /// file form one namespace; a name defined twice is an error.
    pub(super) fn namespace(sources: &'a [&'a Source], cfg: &'a Config) -> Self {
        let mut b = Build {
            sources,
            cfg,
            all: Vec::new(),
            vars: Vars {
                set: BTreeMap::new(),
                required: BTreeMap::new(),
            },
            profile_docs: BTreeMap::new(),
            default_doc: None,
            names: Vec::new(),
            drafts: BTreeMap::new(),
            profiles: BTreeMap::new(),
            used: BTreeSet::new(),
            devices: Vec::new(),
            device_profiles: Vec::new(),
        };
        for (i, src) in sources.iter().enumerate() {
            let mut d = Diags::new(&src.path);
            for (name, v) in &src.doc.vars {
                if b.vars.set.contains_key(name.as_str()) {
                    d.on(
                        v,
                        format!("variable `{name}` is set twice"),
                        Some("set each variable once, in the site policy"),
                    );
                } else {
                    b.vars.set.insert(name, v);
                }
            }
            for (name, r) in &src.doc.requires {
                if let Some(k) = &r.value.kind {
                    if k.value != "networks" && k.value != "hosts" {
                        d.on(
                            k,
                            format!("unknown variable kind `{}`", k.value),
                            Some("use networks (addresses and CIDRs) or hosts (also domain names)"),
                        );
                    }
                }
                b.vars.required.entry(name).or_insert(r);
            }
            for (name, p) in &src.doc.profiles {
                if b.profile_docs.contains_key(name.as_str()) {
                    d.on(p, format!("profile `{name}` is defined twice"), None);
                } else {
                    b.profile_docs.insert(name, (i, p));
                }
            }
            if let Some(dp) = &src.doc.default_profile {
                if b.default_doc.is_some() {
                    d.on(dp, "default_profile is set twice", None);
                } else {
                    b.default_doc = Some((i, dp));
                }
            }
            b.all.extend(d.list);
        }
        check_vars(sources, &b.vars, &mut b.all);
        b
    }

    /// Whether `name` is a profile (defined, or the built-in default).
    fn defined(&self, name: &str) -> bool {
        self.profile_docs.contains_key(name) || (self.builtin() && name == BUILTIN_DEFAULT)
    }

    /// The built-in default exists unless a profile takes its name.
    fn builtin(&self) -> bool {
        !self.profile_docs.contains_key(BUILTIN_DEFAULT)
    }

    /// A draft (rules expanded, not folded) of every defined profile.
    pub(super) fn draft_profiles(&mut self) {
        self.names = self.profile_docs.keys().map(|n| n.to_string()).collect();
        for (name, (i, p)) in &self.profile_docs {
            let mut d = Diags::new(&self.sources[*i].path);
            self.drafts.insert(
                name.to_string(),
                draft(&mut d, name, p, self.cfg, &self.vars),
            );
            self.profiles.insert(
                name.to_string(),
                CompiledProfile {
                    name: name.to_string(),
                    description: p.value.description.clone(),
                    source: p.value.source.clone(),
                    limitations: p.value.limitations.clone(),
                    ..Default::default()
                },
            );
            self.all.extend(d.list);
        }
    }

    /// The profile unknown devices get: `default_profile`, else the
    /// built-in one.
    pub(super) fn default_profile_name(&mut self) -> String {
        let name = match self.default_doc {
            Some((i, s)) => {
                if !self.defined(&s.value) {
                    let mut d = Diags::new(&self.sources[i].path);
                    d.on(
                        s,
                        format!("default_profile `{}` is not defined", s.value),
                        Some("define it under `profiles:`"),
                    );
                    self.all.extend(d.list);
                }
                s.value.clone()
            }
            None => BUILTIN_DEFAULT.to_string(),
        };
        self.used.insert(name.clone());
        name
    }

    /// Devices, in file order; a device with overrides gets its own variant
    /// of its profile, named `<profile>@<device>`.
    pub(super) fn devices(&mut self) {
        for src in self.sources {
            let mut d = Diags::new(&src.path);
            for dev in &src.doc.devices {
                let v = &dev.value;
                let base = v.profile.value.as_str();
                if !self.defined(base) {
                    d.on(
                        &v.profile,
                        format!("profile `{base}` is not defined"),
                        Some("define it under `profiles:`, or include the vendor file that does"),
                    );
                }
                self.used.insert(base.to_string());
                let mut profile = base.to_string();
                if v.mode.is_some() || !v.egress.is_empty() {
                    let mut variant = self.drafts.get(base).cloned().unwrap_or_default();
                    if let Some(m) = &v.mode {
                        variant.mode = parse_mode(&mut d, m);
                    }
                    for r in &v.egress {
                        egress_rule(&mut d, r, self.cfg, &self.vars, &mut variant);
                    }
                    profile = format!("{base}@{}", v.name.value);
                    let mut cp = self.profiles.get(base).cloned().unwrap_or_default();
                    cp.name = profile.clone();
                    self.profiles.insert(profile.clone(), cp);
                    self.drafts.insert(profile.clone(), variant);
                    self.names.push(profile.clone());
                }
                if let Some(c) = device(&mut d, dev, &self.devices) {
                    self.devices.push(c);
                    self.device_profiles.push(profile);
                    self.check_capacity(&mut d, dev);
                }
            }
            self.all.extend(d.list);
        }
    }

    /// The built-in default profile (DHCP and DNS to the site's servers),
    /// last, unless a profile took its name.
    pub(super) fn builtin_default(&mut self) {
        if !self.builtin() {
            return;
        }
        self.names.push(BUILTIN_DEFAULT.into());
        let mut draft = Draft {
            mode: Mode::Enforce as u8,
            ..Default::default()
        };
        let d = Diags::new(Path::new("<builtin>"));
        for (block, rules) in [("dhcp", dhcp_rules(self.cfg)), ("dns", dns_rules(self.cfg))] {
            let since = super::origin::mark(&draft);
            draft.egress.extend(rules);
            let kind = format!("use: {block} (built-in default profile)");
            super::origin::record(&d, &mut draft, since, &kind, None, None, None);
        }
        self.drafts.insert(BUILTIN_DEFAULT.into(), draft);
        self.profiles.insert(
            BUILTIN_DEFAULT.into(),
            CompiledProfile {
                name: BUILTIN_DEFAULT.into(),
                description: Some("built in: DHCP and DNS to the site's servers".into()),
                ..Default::default()
            },
        );
    }

    /// Ids 1 to `max_devices - 1` go to devices (0 is unknown devices):
    /// the first device beyond them is the located error, once.
    fn check_capacity(&self, d: &mut Diags<'_>, dev: &Spanned<DeviceDoc>) {
        let cap = self.cfg.max_devices as usize;
        if self.devices.len() == cap {
            d.on(
                &dev.value.name,
                format!(
                    "device `{}` is device {cap}; max_devices: {cap} leaves room for {} (id 0 is unknown devices)",
                    dev.value.name.value,
                    cap - 1
                ),
                Some("raise max_devices in the daemon's configuration (each slot costs kernel memory: README, Device capacity)"),
            );
        }
    }

    /// Profile ids must fit the kernel's tables (device ids: `check_capacity`).
    pub(super) fn check_counts(&mut self) {
        let first = &self.sources[0].path;
        if self.names.len() > MAX_PROFILES as usize {
            self.all.push(Diagnostic::file_error(
                first,
                format!(
                    "{} profiles; at most {MAX_PROFILES} are supported",
                    self.names.len()
                ),
                None,
            ));
        }
    }

    /// Every profile's rules folded into LPM-ready entries, in id order.
    pub(super) fn fold_profiles(&mut self) -> Vec<CompiledProfile> {
        let mut out = Vec::new();
        for name in &self.names {
            let draft = self.drafts.remove(name).unwrap_or_default();
            let mut cp = self.profiles.remove(name).unwrap_or_default();
            let base = name.split('@').next().unwrap_or(name);
            let (file, loc) = match self.profile_docs.get(base) {
                Some((i, p)) => (self.sources[*i].path.clone(), Some(p.referenced)),
                None => (PathBuf::from("<builtin>"), None),
            };
            let mut d = Diags::new(&file);
            cp.mode = draft.mode;
            cp.egress = fold(&mut d, loc, name, draft.egress);
            cp.inbound = fold(&mut d, loc, name, draft.inbound);
            cp.domains = draft.domains;
            cp.origins = draft.origins;
            self.all.extend(d.list);
            out.push(cp);
        }
        out
    }

    /// A warning for every profile no device uses.
    pub(super) fn lint_unused_profiles(&mut self) {
        for (name, (i, p)) in &self.profile_docs {
            if !self.used.contains(*name) {
                let mut d = Diags::new(&self.sources[*i].path);
                d.warn_at(
                    p.referenced,
                    format!("profile `{name}` is not used by any device"),
                    Some("assign it to a device, or remove it"),
                );
                self.all.extend(d.list);
            }
        }
    }

    /// Profile ids for the devices, and the result: the policy, or every
    /// diagnostic when one is an error.
    pub(super) fn finish(
        mut self,
        profiles: Vec<CompiledProfile>,
        default_name: &str,
    ) -> Result<Compiled, Vec<Diagnostic>> {
        let names = &self.names;
        let id_of = |n: &str| {
            names
                .iter()
                .position(|x| x == n)
                .map(|i| i as u16)
                .unwrap_or(0)
        };
        for (dev, p) in self.devices.iter_mut().zip(&self.device_profiles) {
            dev.profile = id_of(p);
        }
        if self.all.iter().any(Diagnostic::is_error) {
            return Err(self.all);
        }
        Ok(Compiled {
            profiles,
            default_profile: id_of(default_name),
            devices: self.devices,
            warnings: self.all,
            files: self.sources.iter().map(|s| s.path.clone()).collect(),
        })
    }
}
