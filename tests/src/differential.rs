//! The kernel judge against the userspace model (`model/`), frame by
//! frame: the fixture policy loaded through the harness, the same learned
//! entries written to both, and every frame's return value, bumped counter
//! and violation event compared with what the model decides. Used by the
//! `datapath` fuzz target and by `tests/tests/model.rs`.
//!
//! A fuzz input is a short sequence of records, each a control byte (which
//! hook), a big-endian u16 length and that many frame bytes (fewer when the
//! input ends first), so one input can open a flow and then use it.

use std::{fmt::Write, net::IpAddr};

use iotfence_common::{consts::PROTO_TCP, PortRule, Verdict};

use crate::{
    fixtures,
    harness::{Harness, Hook, TC_ACT_SHOT, TC_ACT_UNSPEC, XDP_DROP, XDP_PASS},
    model::{Judgement, Model},
};

/// More records in one input are ignored: longer inputs add no new state.
pub const MAX_RECORDS: usize = 16;

/// Learned entries both sides start with (as in the fixture table).
const LEARNED: [(&str, &str, i64); 2] = [
    ("cam-1", "203.0.113.77", 3600),
    ("cam-1", "203.0.113.78", -1),
];

/// What one record of an input does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Judge(Hook),
    /// Router -> device, through the TC egress observer.
    Observe,
}

impl Op {
    pub fn from_byte(b: u8) -> Op {
        match b & 3 {
            1 => Op::Judge(Hook::TcIngress),
            2 => Op::Observe,
            _ => Op::Judge(Hook::Xdp),
        }
    }

    pub fn byte(self) -> u8 {
        match self {
            Op::Judge(Hook::TcIngress) => 1,
            Op::Observe => 2,
            _ => 0,
        }
    }
}

/// Splits an input into its records.
pub fn records(mut data: &[u8]) -> Vec<(Op, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 && out.len() < MAX_RECORDS {
        let op = Op::from_byte(data[0]);
        let len = u16::from_be_bytes([data[1], data[2]]) as usize;
        let frame = &data[3..(3 + len).min(data.len())];
        data = &data[3 + frame.len()..];
        out.push((op, frame));
    }
    out
}

/// The inverse of [`records`], for writing seeds.
pub fn encode(records: &[(Op, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (op, frame) in records {
        out.push(op.byte());
        out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// How many frames ran, and how many the kernel's test runner refused
/// (too short for it, say): those ran nowhere, so the model skips them too.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub ran: u64,
    pub refused: u64,
}

pub struct Differential {
    pub h: Harness,
    pub model: Model,
    pub tally: Tally,
}

impl Default for Differential {
    fn default() -> Self {
        Self::new()
    }
}

impl Differential {
    /// The fixture policy, with the fixture table's learned entries.
    pub fn new() -> Self {
        let mut d = Self::bare();
        for (device, addr, ttl) in LEARNED {
            d.learn(
                device,
                addr.parse().unwrap(),
                PortRule::new(PROTO_TCP, 443, 443),
                ttl,
            );
        }
        d
    }

    /// The fixture policy, nothing learned.
    pub fn bare() -> Self {
        let h = Harness::new(fixtures::POLICY, fixtures::CONFIG_EXTRA);
        let model = Model::new(&h.policy, vec![fixtures::ROUTER_IP6.parse().unwrap()]);
        Self {
            h,
            model,
            tally: Tally::default(),
        }
    }

    /// A learned entry on both sides; a negative TTL writes it expired.
    pub fn learn(&mut self, device: &str, addr: IpAddr, rule: PortRule, ttl_secs: i64) {
        self.h.learn(device, addr, rule, ttl_secs);
        let id = self.h.device_id(device);
        self.model.learn(id, addr, rule, ttl_secs > 0);
    }

    /// Forgets every flow on both sides, so inputs do not depend on each
    /// other (the rate limiters never bind at the configured rates).
    pub fn reset(&mut self) {
        let flows = &mut self.h.dp.maps.flows;
        let keys: Vec<_> = flows.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = flows.remove(&k);
        }
        self.model.forget_flows();
        let _ = self.h.events();
    }

    /// Runs one fuzz input from a clean state.
    pub fn run_input(&mut self, data: &[u8]) -> Result<(), String> {
        self.reset();
        for (i, (op, frame)) in records(data).into_iter().enumerate() {
            self.step(op, frame)
                .map_err(|e| format!("record {i} ({op:?}) of input {}: {e}", hex(data)))?;
        }
        Ok(())
    }

    pub fn step(&mut self, op: Op, frame: &[u8]) -> Result<(), String> {
        match op {
            Op::Judge(hook) => self.judge(hook, frame).map(|_| ()),
            Op::Observe => self.observe(frame),
        }
    }

    /// Judges `frame` on both sides; `Ok(None)` when the kernel refused it.
    pub fn judge(&mut self, hook: Hook, frame: &[u8]) -> Result<Option<Judgement>, String> {
        let saved = self.model.clone_flows();
        let want = self.model.judge(frame);
        let before = self.h.count(want.device, want.verdict, want.reason);
        let Ok(rv) = self.h.try_run(hook, frame) else {
            self.model.restore_flows(saved);
            self.tally.refused += 1;
            return Ok(None);
        };
        self.tally.ran += 1;
        let fail = |what: String| {
            Err(format!(
                "{hook:?}: {what}; model {want:?}; frame {}",
                hex(frame)
            ))
        };
        let dropped = want.verdict == Verdict::Dropped;
        let expected_rv = match (hook, dropped) {
            (Hook::TcIngress, true) => TC_ACT_SHOT,
            (Hook::TcIngress, false) => TC_ACT_UNSPEC,
            (_, true) => XDP_DROP,
            (_, false) => XDP_PASS,
        };
        if rv != expected_rv {
            return fail(format!("returned {rv}, want {expected_rv}"));
        }
        let after = self.h.count(want.device, want.verdict, want.reason);
        if after != before + 1 {
            return fail(format!("the model's counter went {before} -> {after}"));
        }
        let events: Vec<_> = self
            .h
            .events()
            .iter()
            .map(|e| (e.device, e.verdict, e.reason))
            .collect();
        let expected: Vec<_> = if want.verdict == Verdict::Allowed {
            vec![]
        } else {
            vec![(want.device, want.verdict as u8, want.reason as u8)]
        };
        if events != expected {
            return fail(format!("events {events:?}, want {expected:?}"));
        }
        Ok(Some(want))
    }

    /// Sends `frame` towards a device through the observer on both sides.
    pub fn observe(&mut self, frame: &[u8]) -> Result<(), String> {
        match self.h.try_run(Hook::TcEgress, frame) {
            Err(_) => self.tally.refused += 1,
            Ok(TC_ACT_UNSPEC) => {
                self.tally.ran += 1;
                self.model.observe(frame);
            }
            Ok(rv) => return Err(format!("the observer returned {rv} for {}", hex(frame))),
        }
        Ok(())
    }
}
