//! Runs the real programs on fixture packets with BPF_PROG_TEST_RUN: loads
//! the embedded object into a private pin directory, applies a policy through
//! the daemon's own code, and reads verdicts, counters and events back.

use std::{net::IpAddr, path::Path};

use aya::programs::{TestRun, TestRunOptions};
use iotfence::{
    config::{self, Config},
    events,
    kernel::{counters as stats, load::Datapath},
    policy::compile::{self, Compiled},
};
use iotfence_common::{
    consts::prog_names, values::LearnedRules, PortRule, Reason, Verdict, ViolationEvent,
};

/// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns and of learned expiries.
pub use iotfence::clock::mono_ns as monotonic_ns;

use crate::privileged::PinDir;

/// Which program a packet goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Xdp,
    TcIngress,
    /// The TC egress observer (router -> device).
    TcEgress,
}

/// What a judged packet came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pass,
    Drop,
}

pub struct Harness {
    pub dp: Datapath,
    pub counters: stats::Counters,
    pub cfg: Config,
    pub policy: Compiled,
    // Last: the pins go after the handles.
    pub pins: PinDir,
}

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const TC_ACT_UNSPEC: u32 = u32::MAX;
pub const TC_ACT_SHOT: u32 = 2;

/// The daemon configuration of a datapath pinned under `pin_dir`, with
/// `extra` appended; panics with the diagnostics.
pub fn config_at(pin_dir: &Path, extra: &str) -> Config {
    let text = format!(
        "interfaces: [iot0]\npolicy: policy.yaml\npin_dir: {}\n{extra}",
        pin_dir.display()
    );
    config::parse(Path::new("test-config.yaml"), &text).unwrap_or_else(|d| panic!("config: {d:?}"))
}

/// `policy_yaml` compiled under `cfg`; panics with the diagnostics.
fn compiled(policy_yaml: &str, cfg: &Config) -> Compiled {
    compile::compile(Path::new("policy.yaml"), policy_yaml, cfg).unwrap_or_else(|d| {
        panic!(
            "policy: {}",
            d.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

impl Harness {
    /// `config_yaml` may omit `policy` and `interfaces` (filled in here).
    pub fn new(policy_yaml: &str, config_extra: &str) -> Self {
        let pins = PinDir::new();
        let cfg = config_at(&pins.path, config_extra);
        let policy = compiled(policy_yaml, &cfg);
        let mut dp =
            Datapath::load(&pins.path, &cfg.dns, cfg.max_devices).expect("loading the datapath");
        dp.apply(&cfg, &policy).expect("applying the policy");
        // What `RouterAddrs` writes on a router with this address.
        let router: std::net::Ipv6Addr = crate::fixtures::ROUTER_IP6.parse().unwrap();
        dp.maps
            .router_addrs
            .insert(router.octets(), 1, 0)
            .expect("writing the router's address");
        dp.maps.grants.bump().expect("bumping the grants epoch");
        let counters = stats::Counters::open(&pins.path).expect("opening the counters");
        Self {
            dp,
            counters,
            cfg,
            policy,
            pins,
        }
    }

    /// Compiles and applies `policy_yaml` as a reload does; returns the
    /// generation now enforced.
    pub fn apply_policy(&mut self, policy_yaml: &str) -> u8 {
        let policy = compiled(policy_yaml, &self.cfg);
        self.dp
            .apply(&self.cfg, &policy)
            .expect("applying the policy")
    }

    /// Loads without applying a policy (fail-closed state).
    pub fn unconfigured() -> Self {
        let pins = PinDir::new();
        let cfg = config_at(&pins.path, "");
        let policy = Compiled {
            profiles: Vec::new(),
            default_profile: 0,
            devices: Vec::new(),
            warnings: Vec::new(),
            files: Vec::new(),
        };
        let dp =
            Datapath::load(&pins.path, &cfg.dns, cfg.max_devices).expect("loading the datapath");
        let counters = stats::Counters::open(&pins.path).expect("opening the counters");
        Self {
            dp,
            counters,
            cfg,
            policy,
            pins,
        }
    }

    pub fn run(&self, hook: Hook, packet: &[u8]) -> u32 {
        self.try_run(hook, packet).unwrap_or_else(|e| {
            panic!(
                "BPF_PROG_TEST_RUN on {hook:?} with {} bytes {packet:02x?}: {e}",
                packet.len()
            )
        })
    }

    pub fn try_run(&self, hook: Hook, packet: &[u8]) -> Result<u32, aya::programs::ProgramError> {
        let opts = TestRunOptions {
            data_in: Some(packet),
            ..Default::default()
        };
        let r = match hook {
            Hook::Xdp => self.dp.xdp().unwrap().test_run(opts),
            Hook::TcIngress => self.dp.tc(prog_names::TC_INGRESS).unwrap().test_run(opts),
            Hook::TcEgress => self.dp.tc(prog_names::TC_EGRESS).unwrap().test_run(opts),
        };
        Ok(r?.return_value)
    }

    /// Runs `packet` through program `name` (XDP or TC): the return value
    /// and the packet as the program left it.
    pub fn run_out(&self, name: &str, packet: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; packet.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(packet),
            data_out: Some(&mut out),
            ..Default::default()
        };
        let r = if name == prog_names::XDP {
            self.dp.xdp().unwrap().test_run(opts)
        } else {
            self.dp.tc(name).unwrap().test_run(opts)
        }
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on {name}: {e}"));
        out.truncate(r.data_size_out as usize);
        (r.return_value, out)
    }

    /// Average nanoseconds per run of `packet` on `hook` over `repeat`
    /// in-kernel repetitions (BPF_PROG_TEST_RUN's own clock), and the
    /// program's return value.
    pub fn time(&self, hook: Hook, packet: &[u8], repeat: u32) -> (u32, u64) {
        let opts = TestRunOptions {
            data_in: Some(packet),
            repeat,
            ..Default::default()
        };
        let r = match hook {
            Hook::Xdp => self.dp.xdp().unwrap().test_run(opts),
            Hook::TcIngress => self.dp.tc(prog_names::TC_INGRESS).unwrap().test_run(opts),
            Hook::TcEgress => self.dp.tc(prog_names::TC_EGRESS).unwrap().test_run(opts),
        }
        .unwrap_or_else(|e| panic!("timed BPF_PROG_TEST_RUN on {hook:?}: {e}"));
        (r.return_value, r.duration.as_nanos() as u64)
    }

    /// Writes a learned entry for `device` as DNS learning would; a
    /// negative `ttl_secs` writes one already expired.
    pub fn learn(&mut self, device: &str, addr: IpAddr, rule: PortRule, ttl_secs: i64) {
        let now = monotonic_ns() as i64;
        let v = LearnedRules::one(rule, (now + ttl_secs * 1_000_000_000) as u64);
        let key = iotfence::dns::table::key(self.device_id(device), addr);
        let dns = self.dp.dns.as_mut().expect("the DNS maps");
        dns.learned.insert(key, v, 0).unwrap();
        dns.grants.bump().unwrap();
    }

    /// Runs a device-originated packet through the judge on `hook`.
    pub fn judge(&self, hook: Hook, packet: &[u8]) -> Action {
        let rv = self.run(hook, packet);
        match (hook, rv) {
            (Hook::Xdp, XDP_PASS) | (Hook::TcIngress, TC_ACT_UNSPEC) => Action::Pass,
            (Hook::Xdp, XDP_DROP) | (Hook::TcIngress, TC_ACT_SHOT) => Action::Drop,
            other => panic!("unexpected return {other:?}"),
        }
    }

    pub fn count(&self, device: u32, verdict: Verdict, reason: Reason) -> u64 {
        self.counters
            .counter(device, verdict, reason)
            .unwrap()
            .packets
    }

    pub fn events(&mut self) -> Vec<ViolationEvent> {
        let ring = self.dp.events.as_mut().unwrap();
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(events::decode(&item).expect("event size"));
        }
        out
    }

    pub fn device_id(&self, name: &str) -> u32 {
        if name == "unknown" {
            return 0;
        }
        self.policy
            .devices
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no device {name}"))
            .id
    }
}
