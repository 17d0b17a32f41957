//! Validates a policy against the configuration and compiles it into what
//! the maps hold. Every problem is collected (not just the first) with its
//! file and location; nothing here touches the kernel.
//!
//! A policy may span files (see `sources`): profiles, devices, variables
//! and requirements from every file form one namespace.

use std::{
    borrow::Borrow,
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::{Path, PathBuf},
};

use iotfence_common::{
    consts::{
        LEARNED_RULES_PER_ADDR, MAX_DEVICES, MAX_PROFILES, MODE_AUDIT, MODE_ENFORCE, PROTO_ANY,
        PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, RULES_PER_PREFIX,
    },
    PortRule, RuleSet,
};
use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use crate::{
    config::Config,
    diag::{Diagnostic, Diags},
    policy::{
        doc::{OneOrMany, PortSpec, ProfileDoc, ProtoSpec, RequireDoc, RuleDoc},
        pattern::Pattern,
        sources::{self, Source},
    },
};

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
}

/// Site variables and what vendor files require of them.
struct Vars<'a> {
    set: BTreeMap<&'a str, &'a Spanned<OneOrMany<String>>>,
    required: BTreeMap<&'a str, &'a Spanned<RequireDoc>>,
}

impl Vars<'_> {
    fn hint(&self, name: &str) -> String {
        let what = self
            .required
            .get(name)
            .and_then(|r| r.value.description.as_deref())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        format!("set `{name}`{what} under `vars:` in the site policy")
    }
}

fn is_networks(r: &RequireDoc) -> bool {
    r.kind.as_ref().is_some_and(|k| k.value == "networks")
}

pub fn compile_sources<S: Borrow<Source>>(
    sources: &[S],
    cfg: &Config,
) -> Result<Compiled, Vec<Diagnostic>> {
    let sources: Vec<&Source> = sources.iter().map(Borrow::borrow).collect();
    let mut all: Vec<Diagnostic> = Vec::new();
    let mut vars = Vars {
        set: BTreeMap::new(),
        required: BTreeMap::new(),
    };
    let mut profile_docs: BTreeMap<&str, (usize, &Spanned<ProfileDoc>)> = BTreeMap::new();
    let mut default_doc: Option<(usize, &Spanned<String>)> = None;
    for (i, src) in sources.iter().enumerate() {
        let mut d = Diags::new(&src.path);
        for (name, v) in &src.doc.vars {
            if vars.set.contains_key(name.as_str()) {
                d.on(
                    v,
                    format!("variable `{name}` is set twice"),
                    Some("set each variable once, in the site policy"),
                );
            } else {
                vars.set.insert(name, v);
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
            vars.required.entry(name).or_insert(r);
        }
        for (name, p) in &src.doc.profiles {
            if profile_docs.contains_key(name.as_str()) {
                d.on(p, format!("profile `{name}` is defined twice"), None);
            } else {
                profile_docs.insert(name, (i, p));
            }
        }
        if let Some(dp) = &src.doc.default_profile {
            if default_doc.is_some() {
                d.on(dp, "default_profile is set twice", None);
            } else {
                default_doc = Some((i, dp));
            }
        }
        all.extend(d.list);
    }
    check_vars(&sources, &vars, &mut all);

    // Profile ids: defined profiles by name, then device-specific variants,
    // then the built-in default when no profile takes its name.
    let mut names: Vec<String> = profile_docs.keys().map(|n| n.to_string()).collect();
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    let mut profiles: BTreeMap<String, CompiledProfile> = BTreeMap::new();
    for (name, (i, p)) in &profile_docs {
        let mut d = Diags::new(&sources[*i].path);
        drafts.insert(name.to_string(), draft(&mut d, name, p, cfg, &vars));
        profiles.insert(
            name.to_string(),
            CompiledProfile {
                name: name.to_string(),
                description: p.value.description.clone(),
                source: p.value.source.clone(),
                limitations: p.value.limitations.clone(),
                ..Default::default()
            },
        );
        all.extend(d.list);
    }
    let builtin = !profile_docs.contains_key(BUILTIN_DEFAULT);
    let defined = |n: &str| profile_docs.contains_key(n) || (builtin && n == BUILTIN_DEFAULT);
    let mut used: BTreeSet<String> = BTreeSet::new();
    let default_name = match default_doc {
        Some((i, s)) => {
            if !defined(&s.value) {
                let mut d = Diags::new(&sources[i].path);
                d.on(
                    s,
                    format!("default_profile `{}` is not defined", s.value),
                    Some("define it under `profiles:`"),
                );
                all.extend(d.list);
            }
            s.value.clone()
        }
        None => BUILTIN_DEFAULT.to_string(),
    };
    used.insert(default_name.clone());

    // Devices, in file order; a device with overrides gets its own variant
    // of its profile, named `<profile>@<device>`.
    let mut devices: Vec<CompiledDevice> = Vec::new();
    let mut device_profiles: Vec<String> = Vec::new();
    for src in &sources {
        let mut d = Diags::new(&src.path);
        for dev in &src.doc.devices {
            let v = &dev.value;
            let base = v.profile.value.as_str();
            if !defined(base) {
                d.on(
                    &v.profile,
                    format!("profile `{base}` is not defined"),
                    Some("define it under `profiles:`, or include the vendor file that does"),
                );
            }
            used.insert(base.to_string());
            let mut profile = base.to_string();
            if v.mode.is_some() || !v.egress.is_empty() {
                let mut variant = drafts.get(base).cloned().unwrap_or_default();
                if let Some(m) = &v.mode {
                    variant.mode = parse_mode(&mut d, m);
                }
                for r in &v.egress {
                    egress_rule(&mut d, r, cfg, &vars, &mut variant);
                }
                profile = format!("{base}@{}", v.name.value);
                let mut cp = profiles.get(base).cloned().unwrap_or_default();
                cp.name = profile.clone();
                profiles.insert(profile.clone(), cp);
                drafts.insert(profile.clone(), variant);
                names.push(profile.clone());
            }
            if let Some(dev) = device(&mut d, dev, &devices) {
                devices.push(dev);
                device_profiles.push(profile);
            }
        }
        all.extend(d.list);
    }
    if devices.len() >= MAX_DEVICES as usize {
        all.push(Diagnostic::file_error(
            &sources[0].path,
            format!(
                "{} devices; at most {} are supported",
                devices.len(),
                MAX_DEVICES - 1
            ),
            None,
        ));
    }
    if builtin {
        names.push(BUILTIN_DEFAULT.into());
        let mut egress = dhcp_rules(cfg);
        egress.extend(dns_rules(cfg));
        drafts.insert(
            BUILTIN_DEFAULT.into(),
            Draft {
                mode: MODE_ENFORCE,
                egress,
                ..Default::default()
            },
        );
        profiles.insert(
            BUILTIN_DEFAULT.into(),
            CompiledProfile {
                name: BUILTIN_DEFAULT.into(),
                description: Some("built in: DHCP and DNS to the site's servers".into()),
                ..Default::default()
            },
        );
    }
    if names.len() > MAX_PROFILES as usize {
        all.push(Diagnostic::file_error(
            &sources[0].path,
            format!(
                "{} profiles; at most {MAX_PROFILES} are supported",
                names.len()
            ),
            None,
        ));
    }
    // Fold every profile's rules into LPM-ready entries.
    let mut compiled_profiles = Vec::new();
    for name in &names {
        let draft = drafts.remove(name).unwrap_or_default();
        let mut cp = profiles.remove(name).unwrap_or_default();
        let (file, loc) = match profile_docs.get(name.split('@').next().unwrap_or(name)) {
            Some((i, p)) => (sources[*i].path.clone(), Some(p.referenced)),
            None => (PathBuf::from("<builtin>"), None),
        };
        let mut d = Diags::new(&file);
        cp.mode = draft.mode;
        cp.egress = fold(&mut d, loc, name, draft.egress);
        cp.inbound = fold(&mut d, loc, name, draft.inbound);
        cp.domains = draft.domains;
        all.extend(d.list);
        compiled_profiles.push(cp);
    }
    // Lint: profiles no device uses.
    for (name, (i, p)) in &profile_docs {
        if !used.contains(*name) {
            let mut d = Diags::new(&sources[*i].path);
            d.warn_at(
                p.referenced,
                format!("profile `{name}` is not used by any device"),
                Some("assign it to a device, or remove it"),
            );
            all.extend(d.list);
        }
    }
    let id_of = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .map(|i| i as u16)
            .unwrap_or(0)
    };
    for (dev, p) in devices.iter_mut().zip(&device_profiles) {
        dev.profile = id_of(p);
    }
    if all.iter().any(Diagnostic::is_error) {
        return Err(all);
    }
    Ok(Compiled {
        profiles: compiled_profiles,
        default_profile: id_of(&default_name),
        devices,
        warnings: all,
        files: sources.iter().map(|s| s.path.clone()).collect(),
    })
}

/// Every variable value is an address, CIDR or (for `hosts` variables) a
/// domain pattern; checked once, where it is written.
fn check_vars(sources: &[&Source], vars: &Vars<'_>, all: &mut Vec<Diagnostic>) {
    for src in sources {
        let mut d = Diags::new(&src.path);
        for (name, v) in &src.doc.vars {
            if !std::ptr::eq(vars.set[name.as_str()], v) {
                continue;
            }
            let networks = vars
                .required
                .get(name.as_str())
                .is_some_and(|r| is_networks(&r.value));
            let items = v.value.located(v.referenced);
            if items.is_empty() {
                d.on(v, format!("variable `{name}` is empty"), Some("an empty list would silently allow nothing; remove the profiles that need it instead"));
            }
            for (loc, text) in items {
                if text.starts_with('$') {
                    d.at(loc, "a variable's values cannot name other variables", None);
                } else if is_name(text) {
                    if networks {
                        d.at(
                            loc,
                            format!("`{name}` holds networks, and `{text}` is a name"),
                            Some("write addresses or CIDRs"),
                        );
                    } else if let Err(msg) = Pattern::parse(text) {
                        d.at(loc, msg, None);
                    }
                } else {
                    parse_net(&mut d, loc, text);
                }
            }
        }
        all.extend(d.list);
    }
}

fn parse_mode(d: &mut Diags<'_>, m: &Spanned<String>) -> u8 {
    match m.value.as_str() {
        "enforce" => MODE_ENFORCE,
        "audit" => MODE_AUDIT,
        other => {
            d.on(
                m,
                format!("unknown mode `{other}`"),
                Some("use enforce or audit"),
            );
            MODE_ENFORCE
        }
    }
}

fn draft(
    d: &mut Diags<'_>,
    name: &str,
    p: &Spanned<ProfileDoc>,
    cfg: &Config,
    vars: &Vars<'_>,
) -> Draft {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        d.on(
            p,
            format!("profile name `{name}` may only use letters, digits, '-', '_' and '.'"),
            None,
        );
    }
    let mut out = Draft {
        mode: p
            .value
            .mode
            .as_ref()
            .map(|m| parse_mode(d, m))
            .unwrap_or(MODE_ENFORCE),
        ..Default::default()
    };
    for u in &p.value.uses {
        match u.value.as_str() {
            "dhcp" => out.egress.extend(dhcp_rules(cfg)),
            "dns" => {
                if cfg.resolvers.is_empty() {
                    d.on(
                        u,
                        "`dns` needs resolvers, and the configuration lists none",
                        Some("set `resolvers:` in the configuration file"),
                    );
                }
                out.egress.extend(dns_rules(cfg));
            }
            "ntp" => match vars.set.get(NTP_VAR) {
                None => d.on(
                    u,
                    format!("`ntp` sends to the site variable `{NTP_VAR}`, which is not set"),
                    Some(&vars.hint(NTP_VAR)),
                ),
                Some(v) => {
                    let ntp = [PortRule::new(PROTO_UDP, 123, 123)];
                    for (_, text) in v.value.located(v.referenced) {
                        destination(d, u.referenced, text, &ntp, &mut out, cfg);
                    }
                }
            },
            other => d.on(
                u,
                format!("unknown building block `{other}`"),
                Some("available: dhcp, dns, ntp"),
            ),
        }
    }
    for r in &p.value.egress {
        egress_rule(d, r, cfg, vars, &mut out);
    }
    for r in &p.value.inbound {
        let Some((from, services)) = rule_parts(d, r, Direction::Inbound) else {
            continue;
        };
        for (loc, text) in expand(d, from, vars) {
            if is_name(text) {
                d.at(
                    loc,
                    format!("`{text}`: inbound sources must be addresses or CIDRs"),
                    Some("a remote source is only known by its address when its packet arrives"),
                );
            } else if let Some(net) = parse_net(d, loc, text) {
                check_family(d, loc, &net, &services);
                out.inbound.extend(services.iter().map(|s| (net, *s)));
            }
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Egress,
    Inbound,
}

/// A rule's address list (`to` for egress, `from` for inbound) and its
/// services; reports a rule that uses the other direction's key or lacks
/// its own.
fn rule_parts<'r>(
    d: &mut Diags<'_>,
    r: &'r Spanned<RuleDoc>,
    dir: Direction,
) -> Option<(&'r Spanned<OneOrMany<String>>, Vec<PortRule>)> {
    let (own, other, wrong, missing, hint) = match dir {
        Direction::Egress => (
            &r.value.to,
            &r.value.from,
            "egress rules name destinations with `to`, not `from`",
            "egress rule without `to`",
            "add `to: [198.51.100.0/24]`",
        ),
        Direction::Inbound => (
            &r.value.from,
            &r.value.to,
            "inbound rules name remote sources with `from`, not `to`",
            "inbound rule without `from`",
            "add `from: [192.0.2.0/24]`",
        ),
    };
    if other.is_some() {
        d.on(r, wrong, None);
    }
    let Some(list) = own else {
        d.on(r, missing, Some(hint));
        return None;
    };
    Some((list, service(d, &r.value)?))
}

fn egress_rule(
    d: &mut Diags<'_>,
    r: &Spanned<RuleDoc>,
    cfg: &Config,
    vars: &Vars<'_>,
    out: &mut Draft,
) {
    let Some((to, services)) = rule_parts(d, r, Direction::Egress) else {
        return;
    };
    for (loc, text) in expand(d, to, vars) {
        destination(d, loc, text, &services, out, cfg);
    }
}

/// The items of a `to:` / `from:` list with `$variables` replaced by their
/// values (located at the reference). An unset variable is an error that
/// names it: never a silently empty allowlist.
fn expand<'v>(
    d: &mut Diags<'_>,
    list: &'v Spanned<OneOrMany<String>>,
    vars: &Vars<'v>,
) -> Vec<(Location, &'v str)> {
    let mut out = Vec::new();
    for (loc, text) in list.value.located(list.referenced) {
        let Some(name) = text.trim().strip_prefix('$') else {
            out.push((loc, text.as_str()));
            continue;
        };
        match vars.set.get(name) {
            Some(v) => out.extend(
                v.value
                    .located(v.referenced)
                    .into_iter()
                    .map(|(_, t)| (loc, t.as_str())),
            ),
            None => d.at(
                loc,
                format!("variable `${name}` is not set"),
                Some(&vars.hint(name)),
            ),
        }
    }
    out
}

/// One egress destination: an address or CIDR, or a domain pattern.
fn destination(
    d: &mut Diags<'_>,
    loc: Location,
    text: &str,
    services: &[PortRule],
    out: &mut Draft,
    cfg: &Config,
) {
    if is_name(text) {
        domain_rule(d, loc, text, services, &mut out.domains, cfg);
    } else if let Some(net) = parse_net(d, loc, text) {
        check_family(d, loc, &net, services);
        if net.prefix_len() == 0 {
            d.warn_at(
                loc,
                format!("`{text}` allows every destination of its address family"),
                Some("name the vendor's networks or domains instead"),
            );
        }
        out.egress.extend(services.iter().map(|s| (net, *s)));
    }
}

/// ICMP never reaches an IPv6 address, nor ICMPv6 an IPv4 one.
fn check_family(d: &mut Diags<'_>, loc: Location, net: &IpNet, services: &[PortRule]) {
    for s in services {
        let bad = match (s.proto, net) {
            (PROTO_ICMP, IpNet::V6(_)) => {
                Some("icmp to an IPv6 destination can never match; use icmpv6")
            }
            (PROTO_ICMPV6, IpNet::V4(_)) => {
                Some("icmpv6 to an IPv4 destination can never match; use icmp")
            }
            _ => None,
        };
        if let Some(msg) = bad {
            d.at(loc, format!("{net}: {msg}"), None);
            return;
        }
    }
}

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn dhcp_rules(cfg: &Config) -> Vec<(IpNet, PortRule)> {
    let mut v = vec![
        (
            host("255.255.255.255".parse().unwrap()),
            PortRule::new(PROTO_UDP, 67, 67),
        ),
        (
            host("ff02::1:2".parse().unwrap()),
            PortRule::new(PROTO_UDP, 547, 547),
        ),
    ];
    for s in &cfg.dhcp_servers {
        let port = if s.is_ipv4() { 67 } else { 547 };
        v.push((host(*s), PortRule::new(PROTO_UDP, port, port)));
    }
    v
}

fn dns_rules(cfg: &Config) -> Vec<(IpNet, PortRule)> {
    cfg.resolvers
        .iter()
        .flat_map(|r| {
            [
                (host(*r), PortRule::new(PROTO_UDP, 53, 53)),
                (host(*r), PortRule::new(PROTO_TCP, 53, 53)),
            ]
        })
        .collect()
}

/// Looks like a domain or pattern rather than an address.
fn is_name(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('*')
        || (t.parse::<IpNet>().is_err()
            && t.parse::<IpAddr>().is_err()
            && t.contains('.')
            && t.chars().any(|c| c.is_ascii_alphabetic())
            && !t.contains(':')
            && !t.contains('/'))
}

fn domain_rule(
    d: &mut Diags<'_>,
    loc: Location,
    text: &str,
    services: &[PortRule],
    list: &mut Vec<DomainRule>,
    cfg: &Config,
) {
    let pattern = match Pattern::parse(text) {
        Ok(p) => p,
        Err(msg) => {
            d.at(
                loc,
                msg,
                Some("name exact hosts (api.example.com) or `*.example.com` for every name below example.com"),
            );
            return;
        }
    };
    if cfg.resolvers.is_empty() {
        d.at(
            loc,
            format!("`{text}` needs DNS learning, and the configuration lists no resolvers"),
            Some("set `resolvers:` in the configuration file: iotfence learns only from their answers"),
        );
        return;
    }
    let entry = match list.iter_mut().position(|x| x.pattern == pattern) {
        Some(i) => &mut list[i],
        None => {
            list.push(DomainRule {
                pattern,
                rules: Vec::new(),
            });
            list.last_mut().unwrap()
        }
    };
    for s in services {
        if !entry.rules.contains(s) {
            entry.rules.push(*s);
        }
    }
    if entry.rules.len() > LEARNED_RULES_PER_ADDR {
        d.at(
            loc,
            format!(
                "`{text}` carries {} (protocol, port) rules; at most {LEARNED_RULES_PER_ADDR} apply to a learned address",
                entry.rules.len()
            ),
            Some("merge ports into ranges"),
        );
    }
}

fn parse_net(d: &mut Diags<'_>, loc: Location, text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            d.at(
                loc,
                format!("`{text}` has host bits set"),
                Some(&format!("did you mean {}?", net.trunc())),
            );
            return None;
        }
        return Some(net);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(host(ip));
    }
    let hint = "write an address (198.51.100.7) or a CIDR (198.51.100.0/24)";
    d.at(
        loc,
        format!("`{text}` is not an IP address or CIDR"),
        Some(hint),
    );
    None
}

/// Protocol and port (or ICMP type) ranges of one rule.
fn service(d: &mut Diags<'_>, r: &RuleDoc) -> Option<Vec<PortRule>> {
    let proto = match &r.proto.value {
        ProtoSpec::Name(n) => match n.to_ascii_lowercase().as_str() {
            "tcp" => PROTO_TCP,
            "udp" => PROTO_UDP,
            "icmp" => PROTO_ICMP,
            "icmpv6" | "ipv6-icmp" => PROTO_ICMPV6,
            "any" => PROTO_ANY,
            _ => {
                d.on(
                    &r.proto,
                    format!("unknown protocol `{n}`"),
                    Some("use tcp, udp, icmp, icmpv6, any or a protocol number"),
                );
                return None;
            }
        },
        ProtoSpec::Number(n) if *n < 255 => *n as u8,
        ProtoSpec::Number(n) => {
            d.on(
                &r.proto,
                format!("protocol number {n} is out of range"),
                Some("0 to 254"),
            );
            return None;
        }
    };
    let has_ports = matches!(proto, PROTO_TCP | PROTO_UDP);
    let is_icmp = matches!(proto, PROTO_ICMP | PROTO_ICMPV6);
    if let Some(p) = &r.ports {
        if !has_ports {
            let hint = if is_icmp {
                "use `types:` for ICMP message types"
            } else {
                "only tcp and udp have ports"
            };
            d.on(p, "this protocol has no ports", Some(hint));
            return None;
        }
    }
    if let Some(t) = &r.types {
        if !is_icmp {
            d.on(t, "`types:` is for icmp and icmpv6 rules", None);
            return None;
        }
    }
    let (list, max) = match (&r.ports, &r.types) {
        (Some(p), _) => (Some(p), 65_535),
        (None, Some(t)) => (Some(t), 255),
        (None, None) => (None, 65_535),
    };
    let Some(list) = list else {
        return Some(vec![PortRule::new(proto, 0, 65_535)]);
    };
    let mut out = Vec::new();
    for (loc, spec) in list.value.located(list.referenced) {
        match range(spec, max) {
            Ok((lo, hi)) => out.push(PortRule::new(proto, lo, hi)),
            Err(msg) => {
                d.at(
                    loc,
                    msg,
                    Some(&format!(
                        "ports are 0 to {max}; ranges are written \"1000-2000\""
                    )),
                );
                return None;
            }
        }
    }
    if out.is_empty() {
        d.on(
            list,
            "empty list matches nothing",
            Some("omit the key to allow every port"),
        );
        return None;
    }
    Some(out)
}

fn range(spec: &PortSpec, max: i64) -> Result<(u16, u16), String> {
    let num = |s: &str| -> Result<i64, String> {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("`{s}` is not a number"))
    };
    let (lo, hi) = match spec {
        PortSpec::Number(n) => (*n, *n),
        PortSpec::Range(s) => match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(s)?;
                (n, n)
            }
        },
    };
    if lo == hi && !(0..=max).contains(&lo) {
        return Err(format!("{lo} is out of range (0 to {max})"));
    }
    if lo < 0 || hi > max || lo > hi {
        return Err(format!(
            "{lo}-{hi} is not a valid range (0 to {max}, low to high)"
        ));
    }
    Ok((lo as u16, hi as u16))
}

/// Groups rules by prefix and folds each covering prefix's rules into the
/// longer prefixes, because an LPM lookup returns only the longest match.
fn fold(
    d: &mut Diags<'_>,
    loc: Option<Location>,
    name: &str,
    entries: Vec<(IpNet, PortRule)>,
) -> Vec<(IpNet, RuleSet)> {
    let mut inner = Diags::new(Path::new(""));
    match fold_entries(&mut inner, entries) {
        Some(v) => v,
        None => {
            for m in inner.list {
                let message = format!("profile `{name}`: {}", m.message);
                match loc {
                    Some(l) => d.at(l, message, m.hint.as_deref()),
                    None => d.file(message, m.hint.as_deref()),
                }
            }
            Vec::new()
        }
    }
}

fn fold_entries(
    d: &mut Diags<'_>,
    entries: Vec<(IpNet, PortRule)>,
) -> Option<Vec<(IpNet, RuleSet)>> {
    let mut by_prefix: BTreeMap<IpNet, Vec<PortRule>> = BTreeMap::new();
    for (net, rule) in entries {
        let v = by_prefix.entry(net).or_default();
        if !v.contains(&rule) {
            v.push(rule);
        }
    }
    // A prefix's covering prefixes are found by truncating it to each
    // shorter prefix length in use and looking that up: testing every
    // prefix against every other took ~70 ms for 10,000 rules. Prefixes
    // are truncated (parse_net refuses host bits).
    let lens: BTreeSet<(bool, u8)> = by_prefix
        .keys()
        .map(|n| (n.addr().is_ipv4(), n.prefix_len()))
        .collect();
    let mut out = Vec::new();
    for net in by_prefix.keys() {
        debug_assert_eq!(net.trunc(), *net);
        let v4 = net.addr().is_ipv4();
        // In the map's order, as a full scan would meet them.
        let mut covers: Vec<&IpNet> = lens
            .iter()
            .filter(|(f, len)| *f == v4 && *len <= net.prefix_len())
            .filter_map(|(_, len)| {
                let c = IpNet::new(net.addr(), *len).ok()?.trunc();
                by_prefix.get_key_value(&c).map(|(k, _)| k)
            })
            .collect();
        covers.sort();
        let mut rules: Vec<PortRule> = Vec::new();
        for other in covers {
            for rule in &by_prefix[other] {
                if !rules.contains(rule) {
                    rules.push(*rule);
                }
            }
        }
        if rules.len() > RULES_PER_PREFIX {
            d.file(
                format!("{net} is reached by {} (protocol, port) rules; at most {RULES_PER_PREFIX} apply to one destination", rules.len()),
                Some("merge ports into ranges"),
            );
            return None;
        }
        let mut set = RuleSet {
            count: rules.len() as u32,
            ..Default::default()
        };
        set.rules[..rules.len()].copy_from_slice(&rules);
        out.push((*net, set));
    }
    Some(out)
}

/// One device's identity, checked against the devices before it.
fn device(
    d: &mut Diags<'_>,
    dev: &Spanned<crate::policy::doc::DeviceDoc>,
    before: &[CompiledDevice],
) -> Option<CompiledDevice> {
    let v = &dev.value;
    if before.iter().any(|o| o.name == v.name.value) {
        d.on(
            &v.name,
            format!("device `{}` is defined twice", v.name.value),
            None,
        );
    }
    let mac = v.mac.as_ref().and_then(|m| match parse_mac(&m.value) {
        Some(mac) if mac[0] & 1 == 1 => {
            d.on(
                m,
                format!("`{}` is a multicast MAC address", m.value),
                Some("a device sends from a unicast address"),
            );
            None
        }
        Some(mac) => {
            if let Some(o) = before.iter().find(|o| o.mac == Some(mac)) {
                d.on(
                    m,
                    format!("MAC {} is also device `{}`", m.value, o.name),
                    None,
                );
            }
            Some(mac)
        }
        None => {
            d.on(
                m,
                format!("`{}` is not a MAC address", m.value),
                Some("write it as 02:00:5e:10:00:01"),
            );
            None
        }
    });
    let mut nets = Vec::new();
    for (loc, a) in v.ip.iter().flat_map(|l| l.value.located(l.referenced)) {
        if let Some(net) = parse_net(d, loc, a) {
            if let Some(o) = before
                .iter()
                .find(|o| o.nets.iter().any(|n| n.contains(&net) || net.contains(n)))
            {
                d.at(
                    loc,
                    format!("{net} overlaps device `{}`", o.name),
                    Some("a source address identifies one device"),
                );
            }
            nets.push(net);
        }
    }
    if v.mac.is_none() && v.ip.is_none() {
        d.on(
            dev,
            format!("device `{}` has neither `mac` nor `ip`", v.name.value),
            Some("iotfence recognizes devices by MAC, then by source address"),
        );
    }
    let mac_or_ip = match v.matching.as_ref().map(|m| (m, m.value.as_str())) {
        None | Some((_, "mac-and-ip")) => false,
        Some((_, "mac-or-ip")) => true,
        Some((m, other)) => {
            d.on(
                m,
                format!("`{other}` is not a match mode"),
                Some("mac-and-ip (the default: both must match) or mac-or-ip"),
            );
            false
        }
    };
    Some(CompiledDevice {
        id: before.len() as u32 + 1,
        name: v.name.value.clone(),
        profile: 0,
        mac,
        nets,
        mac_or_ip,
    })
}

/// `aa:bb:cc:dd:ee:ff`, the form `parse_mac` reads and events print.
pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}
