//! `iotfence explain`: why a device may or may not reach a destination,
//! and by which rule. The verdict comes from the userspace model of the
//! datapath (`model`), fed the question's first packet (`frame`); the
//! tests hold the model to the kernel's verdict and reason on every
//! fixture of the datapath table. What the model cannot say, the policy's
//! rule origins (file, line, vendor section) and the live state (learned
//! addresses, flows) add.

use std::net::IpAddr;

use iotfence_common::{
    consts::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    Mac, Mode, PortRule, Reason,
};
use serde::Serialize;

use crate::{
    events::protocol_label,
    policy::compile::{Compiled, RuleOrigin},
};

pub mod cli;
mod frame;
mod judge;
pub mod model;
mod parse;
mod query;

pub use judge::{Identified, Judgement};
pub use model::Model;
pub use query::{parse_destination, Destination, Target};

/// A learned address as the running daemon holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    pub device: u32,
    pub addr: IpAddr,
    /// The name it was learned from, when known.
    pub name: Option<String>,
    /// Each rule with its remaining lifetime (0: expired).
    pub rules: Vec<(PortRule, u64)>,
}

/// The running daemon's state an explanation cites.
#[derive(Clone, Debug, Default)]
pub struct Live {
    pub learned: Vec<Learned>,
    /// Live flows: (device, destination, destination port, protocol).
    pub flows: Vec<(u32, IpAddr, u16, u8)>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DeviceMatch {
    pub name: String,
    pub id: u32,
    pub profile: String,
    pub mode: String,
    /// How a packet from it is identified.
    pub why: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RuleCite {
    pub profile: String,
    /// `egress`, `inbound`, `use: dns`, ...
    pub kind: String,
    /// file:line:column (`<builtin>` for built-in blocks).
    pub location: String,
    pub section: Option<String>,
    pub comment: Option<String>,
    /// What of the rule covers the destination: an address, prefix or
    /// domain pattern, and the services.
    pub covers: String,
    pub services: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LearnedCite {
    pub address: String,
    pub name: Option<String>,
    pub services: String,
    /// 0 when expired.
    pub expires_in_seconds: u64,
}

/// One destination's verdict and the path of the decision.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Explanation {
    pub device: DeviceMatch,
    /// `198.51.100.7:443/tcp`.
    pub destination: String,
    pub verdict: String,
    pub reason: String,
    /// The decision, step by step, for people.
    pub path: Vec<String>,
    /// The static rules that allow it (or, when none does, those that
    /// cover the destination for other services).
    pub rules: Vec<RuleCite>,
    pub learned: Vec<LearnedCite>,
    /// Live flows of this device to this destination and service: they
    /// pass whatever the rules say, until idle.
    pub live_flows: usize,
}

/// For a domain name: the patterns that name it, and the verdict for
/// every address the device has learned for it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NameExplanation {
    pub device: DeviceMatch,
    pub name: String,
    pub service: String,
    /// The profile's patterns that match the name, with their rules.
    pub patterns: Vec<RuleCite>,
    pub summary: String,
    /// One explanation per address learned for the name.
    pub addresses: Vec<Explanation>,
}

/// Explains with a policy, the router's IPv6 addresses and what is known
/// of the running daemon.
pub struct Explainer<'a> {
    policy: &'a Compiled,
    model: Model,
    live: Live,
}

impl<'a> Explainer<'a> {
    pub fn new(policy: &'a Compiled, router_addrs: Vec<IpAddr>, live: Live) -> Self {
        let mut model = Model::new(policy, router_addrs);
        for l in &live.learned {
            for (rule, left) in &l.rules {
                model.learn(l.device, l.addr, *rule, *left > 0);
            }
        }
        Self {
            policy,
            model,
            live,
        }
    }

    /// The model, to replay observed traffic (flows) into.
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    /// A learned entry, as DNS learning writes it (`left`: seconds, 0:
    /// expired).
    pub fn learn(&mut self, l: Learned) {
        for (rule, left) in &l.rules {
            self.model.learn(l.device, l.addr, *rule, *left > 0);
        }
        self.live.learned.push(l);
    }

    /// Explains a frame the device sent, as the datapath judges it now.
    pub fn frame(&self, bytes: &[u8]) -> Explanation {
        let (f, parsed) = parse::parse(bytes);
        let (j, how) = self.model.assess(&f, parsed);
        let dst = f.dst;
        let destination = match dst {
            Some(a) => service_of(a, f.proto, f.port),
            None => "a frame that is not IP, or malformed".to_string(),
        };
        self.explain(&j, how, f.src_mac, dst, f.proto, f.port, destination)
    }

    /// Explains the first packet of a new connection from `target` to
    /// `dst` on `proto` and `port` (an ICMP type for ICMP).
    pub fn destination(&self, target: &Target, dst: IpAddr, proto: u8, port: u16) -> Explanation {
        let (mac, src) = target.source(self.policy, dst);
        let bytes = frame::first_packet(mac, src, dst, proto, port);
        let mut e = self.frame(&bytes);
        let flows = self
            .live
            .flows
            .iter()
            .filter(|(d, a, p, pr)| *d == e.device.id && *a == dst && *p == port && *pr == proto)
            .count();
        if flows > 0 {
            e.path.push(format!(
                "{flows} live flow(s) of this device to it pass until idle, whatever the rules say"
            ));
        }
        e.live_flows = flows;
        e
    }

    /// Explains a domain name: which patterns name it, and each address the
    /// device learned for it.
    pub fn name(&self, target: &Target, name: &str, proto: u8, port: u16) -> NameExplanation {
        let (mac, src) = target.source(self.policy, "192.0.2.1".parse().unwrap());
        let probe = frame::first_packet(mac, src, "192.0.2.1".parse().unwrap(), proto, port);
        let (f, _) = parse::parse(&probe);
        let (device, profile, how) = self.model.identify_why(&f, false);
        let dm = self.device_match(device, profile, &how);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let patterns: Vec<RuleCite> = self
            .origins(profile)
            .filter(|o| !o.inbound())
            .flat_map(|o| {
                o.domains
                    .iter()
                    .filter(|p| {
                        crate::policy::pattern::Pattern::parse(p).is_ok_and(|p| p.matches(&name))
                    })
                    .map(move |p| cite(self.policy.profile_name(profile), o, p))
            })
            .collect();
        let service = service_label(proto, port);
        let allows = patterns.iter().any(|c| {
            self.origins(profile).any(|o| {
                o.location() == c.location && o.rules.iter().any(|r| r.matches(proto, port))
            })
        });
        let addresses: Vec<Explanation> = self
            .live
            .learned
            .iter()
            .filter(|l| l.device == device && l.name.as_deref() == Some(name.as_str()))
            .map(|l| self.destination(target, l.addr, proto, port))
            .collect();
        let summary = match (patterns.is_empty(), allows) {
            (true, _) => format!(
                "no pattern of profile {} names {name}: an answer for it teaches nothing (a dns_refused event), and its addresses stay denied",
                dm.profile
            ),
            (false, false) => format!(
                "{name} is named by profile {}, but not for {service}: its addresses are learned for the services the patterns list",
                dm.profile
            ),
            (false, true) if addresses.is_empty() => format!(
                "{name} is allowed for {service}: the addresses of the next answer the device gets are learned (none is learned now)"
            ),
            (false, true) => format!(
                "{name} is allowed for {service}; {} address(es) learned for it now",
                addresses.len()
            ),
        };
        NameExplanation {
            device: dm,
            name,
            service,
            patterns,
            summary,
            addresses,
        }
    }

    fn origins(&self, profile: u16) -> impl Iterator<Item = &RuleOrigin> {
        self.policy
            .profiles
            .get(profile as usize)
            .into_iter()
            .flat_map(|p| p.origins.iter())
    }

    fn device_match(&self, id: u32, profile: u16, how: &Identified) -> DeviceMatch {
        let name = |id: u32| self.policy.device_name(id).to_string();
        let p = self.policy.profiles.get(profile as usize);
        let mac_of = |id: u32| {
            self.policy
                .devices
                .iter()
                .find(|d| d.id == id)
                .and_then(|d| d.mac)
                .map(|m| Mac(m).to_string())
                .unwrap_or_default()
        };
        let why = match how {
            Identified::ByMac => format!("its MAC {} is device {}'s", mac_of(id), name(id)),
            Identified::ByAddress(n) => format!("its address is in {n}, device {}'s", name(id)),
            Identified::ByMacAndAddress => format!(
                "its MAC {} and its address are both device {}'s (the device needs both)",
                mac_of(id),
                name(id)
            ),
            Identified::AddressMismatch(d) => format!(
                "its MAC is device {}'s, but the source address is not one of that device's: judged as an unknown device",
                name(*d)
            ),
            Identified::MacMismatch(d) => format!(
                "its address belongs to device {}, which is bound to another MAC: judged as an unknown device",
                name(*d)
            ),
            Identified::Unknown => "no device entry matches its MAC or address: an unknown device, under the default profile".to_string(),
        };
        DeviceMatch {
            name: name(id),
            id,
            profile: p.map(|p| p.name.clone()).unwrap_or("unknown".into()),
            mode: Mode::from_u8(p.map_or(0, |p| p.mode))
                .unwrap_or(Mode::Enforce)
                .name()
                .to_string(),
            why,
        }
    }

    #[expect(clippy::too_many_arguments, reason = "one caller per entry point")]
    fn explain(
        &self,
        j: &Judgement,
        how: Option<Identified>,
        mac: [u8; 6],
        dst: Option<IpAddr>,
        proto: u8,
        port: u16,
        destination: String,
    ) -> Explanation {
        let profile = self.profile_of(j.device);
        let device = match &how {
            Some(h) => self.device_match(j.device, profile, h),
            None => {
                let mut d = self.device_match(j.device, profile, &Identified::Unknown);
                d.why = format!(
                    "a live flow opened by this MAC ({}) names the device",
                    Mac(mac)
                );
                d
            }
        };
        let mut path = vec![format!("device: {} ({})", device.name, device.why)];
        let pname = self.policy.profile_name(profile).to_string();
        let mut rules = Vec::new();
        let mut learned = Vec::new();
        if let Some(dst) = dst {
            let covering: Vec<&RuleOrigin> = self
                .origins(profile)
                .filter(|o| !o.inbound() && o.nets.iter().any(|n| n.contains(&dst)))
                .collect();
            let allowing: Vec<&RuleOrigin> = covering
                .iter()
                .copied()
                .filter(|o| o.rules.iter().any(|r| r.matches(proto, port)))
                .collect();
            let shown = if allowing.is_empty() {
                &covering
            } else {
                &allowing
            };
            for o in shown {
                let net = o
                    .nets
                    .iter()
                    .filter(|n| n.contains(&dst))
                    .max_by_key(|n| n.prefix_len());
                rules.push(cite(
                    &pname,
                    o,
                    &net.map(|n| n.to_string()).unwrap_or_default(),
                ));
            }
            for l in self
                .live
                .learned
                .iter()
                .filter(|l| l.device == j.device && l.addr == dst)
            {
                for (r, left) in l.rules.iter().filter(|(r, _)| r.matches(proto, port)) {
                    learned.push(LearnedCite {
                        address: dst.to_string(),
                        name: l.name.clone(),
                        services: rule_label(r),
                        expires_in_seconds: *left,
                    });
                }
            }
        }
        path.push(match j.reason {
            Reason::Flow => "a live flow covers it: allowed".into(),
            Reason::Fragment => "a later fragment of an allowed first fragment: allowed".into(),
            Reason::Learned => format!(
                "learned from DNS: {} allowed",
                learned
                    .iter()
                    .map(|l| format!(
                        "{} from {} ({}s left)",
                        l.address,
                        l.name.as_deref().unwrap_or("an answer"),
                        l.expires_in_seconds
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Reason::Rule => format!(
                "allowed by profile {pname}: {}",
                rules
                    .iter()
                    .map(|c| format!("{} rule at {}", c.kind, c.location))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Reason::Expired => "learned from DNS once, but the entry has expired".into(),
            Reason::NotAllowed if rules.is_empty() => {
                format!("no rule of profile {pname} covers it, and nothing learned does")
            }
            Reason::NotAllowed => format!(
                "profile {pname} covers this destination only for other services ({})",
                rules
                    .iter()
                    .map(|c| c.services.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => format!("the datapath decides before any rule: {}", other.name()),
        });
        let verdict = j.verdict.name().to_string();
        path.push(format!("verdict: {verdict} ({})", j.reason.name()));
        Explanation {
            device,
            destination,
            verdict,
            reason: j.reason.name().to_string(),
            path,
            rules,
            learned,
            live_flows: 0,
        }
    }

    fn profile_of(&self, device: u32) -> u16 {
        self.policy
            .devices
            .iter()
            .find(|d| d.id == device)
            .map_or(self.policy.default_profile, |d| d.profile)
    }
}

fn cite(profile: &str, o: &RuleOrigin, covers: &str) -> RuleCite {
    RuleCite {
        profile: profile.to_string(),
        kind: o.kind.clone(),
        location: o.location(),
        section: o.section.clone(),
        comment: o.comment.clone(),
        covers: covers.to_string(),
        services: o
            .rules
            .iter()
            .map(rule_label)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `tcp 443`, `udp 1000-2000`, `icmp type 8`, `any`.
pub fn rule_label(r: &PortRule) -> String {
    let p = protocol_label(r.proto);
    let range = if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    };
    match r.proto {
        _ if r.lo == 0 && r.hi == 65_535 => format!("{p} (every port or type)"),
        PROTO_ICMP | PROTO_ICMPV6 => format!("{p} type {range}"),
        _ => format!("{p} {range}"),
    }
}

/// `443/tcp`, `icmp type 8`, `protocol 47`.
pub fn service_label(proto: u8, port: u16) -> String {
    match proto {
        PROTO_TCP | PROTO_UDP => format!("{port}/{}", protocol_label(proto)),
        PROTO_ICMP | PROTO_ICMPV6 => format!("{} type {port}", protocol_label(proto)),
        _ => format!("protocol {}", protocol_label(proto)),
    }
}

fn service_of(a: IpAddr, proto: u8, port: u16) -> String {
    match (a, proto) {
        (IpAddr::V6(a), PROTO_TCP | PROTO_UDP) => format!("[{a}]:{}", service_label(proto, port)),
        (a, PROTO_TCP | PROTO_UDP) => format!("{a}:{}", service_label(proto, port)),
        (a, _) => format!("{a} ({})", service_label(proto, port)),
    }
}
