//! Records from the kernel's DNS ring: queries are remembered, held
//! answers learned from and released.

use std::{
    net::{IpAddr, Ipv6Addr},
    sync::atomic::Ordering::Relaxed,
};

use iotfence_common::dns::{DnsFrame, DNS_KIND_ANSWER, DNS_KIND_QUERY};

use super::Engine;
use crate::{
    clock::mono_ns,
    dns::{
        frame,
        learn::{self, Refusal, Route},
        pending::{Querier, QueryKey},
        table::Credit,
    },
};

impl Engine {
    pub(super) fn handle(&mut self, rec: &[u8]) {
        let hdr = std::mem::offset_of!(DnsFrame, frame);
        if rec.len() < hdr {
            return;
        }
        let u32_at = |o: usize| u32::from_ne_bytes(rec[o..o + 4].try_into().unwrap());
        let stamp = u64::from_ne_bytes(rec[0..8].try_into().unwrap());
        let ifindex = u32_at(std::mem::offset_of!(DnsFrame, ifindex));
        let len = u32_at(std::mem::offset_of!(DnsFrame, len)) as usize;
        let device = u32_at(std::mem::offset_of!(DnsFrame, device));
        let kind = rec[std::mem::offset_of!(DnsFrame, kind)];
        let asked = (rec[std::mem::offset_of!(DnsFrame, redirected)] == 1).then(|| {
            let at = std::mem::offset_of!(DnsFrame, asked);
            let a: [u8; 16] = rec[at..at + 16].try_into().unwrap();
            let a = Ipv6Addr::from(a);
            a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
        });
        let Some(frame_bytes) = rec.get(hdr..hdr + len) else {
            return;
        };
        match kind {
            DNS_KIND_QUERY => self.query(frame_bytes, device),
            DNS_KIND_ANSWER => self.answer(frame_bytes, device, ifindex, stamp, asked),
            _ => {}
        }
    }

    fn query(&mut self, bytes: &[u8], device: u32) {
        self.stats.queries.fetch_add(1, Relaxed);
        let Some(f) = frame::parse(bytes) else { return };
        // The sender's MAC (bytes 6..12): budgets are per sender.
        let mac: [u8; 6] = bytes[6..12].try_into().expect("a parsed frame has a MAC");
        let now = mono_ns();
        for msg in frame::messages(f.proto, &bytes[f.payload.clone()]).unwrap_or_default() {
            if let Some((id, name)) = learn::query_of(msg) {
                let key = QueryKey {
                    client: f.src,
                    port: f.sport,
                    resolver: f.dst,
                    id,
                };
                let from = Querier { device, mac };
                if self.pending.record_from(key, name.clone(), from, now) {
                    let deadline = now + self.pending.lifetime_ns();
                    self.journal.append(&key, &name, from, deadline);
                }
            }
        }
    }

    /// `asked`: the answer is to a redirected query (`dns.redirect`), and
    /// is released with this source address, the resolver the device asked.
    fn answer(
        &mut self,
        bytes: &[u8],
        device: u32,
        ifindex: u32,
        stamp: u64,
        asked: Option<IpAddr>,
    ) {
        self.stats.answers.fetch_add(1, Relaxed);
        let mut out = bytes.to_vec();
        match frame::parse(bytes) {
            None => self.stats.refuse(Refusal::Malformed),
            Some(f) => {
                match frame::messages(f.proto, &bytes[f.payload.clone()]) {
                    None => self.stats.refuse(Refusal::TcpPartial),
                    Some(msgs) => {
                        let route = Route {
                            device,
                            resolver: f.src,
                            client: f.dst,
                            client_port: f.dport,
                        };
                        // The device's MAC: budgets of unknown devices are per MAC.
                        let mac: Option<[u8; 6]> = bytes[0..6].try_into().ok();
                        for m in msgs {
                            self.learn(m, route, mac);
                        }
                    }
                }
                // Learned from as the resolver sent it (the query was seen
                // going to it); released as from the resolver the device asked.
                let released = match asked {
                    None => Some(f.clone()),
                    Some(a) => frame::set_source(&mut out, &f, a),
                };
                match released {
                    Some(r) => frame::finalize_checksum(&mut out, &r),
                    None => {
                        tracing::warn!(asked = %asked.unwrap_or(f.src), resolver = %f.src, "a redirected answer of another family than its query: dropped");
                        return;
                    }
                }
                if let Err(e) = self.released.record(bytes, &f) {
                    tracing::warn!(error = %e, "recording a released DNS-over-TCP segment failed: the stack's re-send will be held again");
                }
            }
        }
        // Released whatever was learned: a refused answer widens nothing.
        match self.injector.send(ifindex, &out) {
            Ok(()) => {
                self.stats.reinjected.fetch_add(1, Relaxed);
                self.stats.hold(mono_ns().saturating_sub(stamp));
            }
            Err(e) => {
                self.stats.reinject_failed.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, ifindex, len = out.len(), "releasing a held DNS answer failed");
            }
        }
    }

    fn learn(&mut self, msg: &[u8], route: Route, mac: Option<[u8; 6]>) {
        let now = mono_ns();
        let rules = self.policy.rules(route.device).unwrap_or(&[]);
        let names = &mut self.names;
        let learning = &self.learning;
        let mut asked = None;
        let lesson = match learn::examine_with(msg, route, rules, &mut self.pending, now, |a| {
            asked = Some(a.name.clone());
            for (addr, _) in &a.addrs {
                names.record(route.device, *addr, &a.name);
                learning.answer(route.device, &a.name, *addr, now);
            }
        }) {
            Ok(l) => l,
            Err(r) => {
                self.stats.refuse(r);
                if let (Refusal::NotAllowed, Some(name)) = (r, asked) {
                    if let Some(e) = self.refused.record(route.device, &name, mac, now) {
                        let _ = self.refusal_tx.try_send(e);
                    }
                }
                return;
            }
        };
        self.stats
            .off_chain_records
            .fetch_add(lesson.off_chain as u64, Relaxed);
        let mut writes = Vec::new();
        for (addr, ttl) in &lesson.addrs {
            let expires_ns = now + self.settings.lifetime(*ttl).as_nanos() as u64;
            for (pattern, rules) in &lesson.patterns {
                let c = Credit {
                    name: lesson.name.clone(),
                    pattern: pattern.clone(),
                    rules: rules.clone(),
                    expires_ns,
                };
                match self
                    .table
                    .credit_from(&self.limits, route.device, mac, *addr, c)
                {
                    Ok(Some(w)) => {
                        self.stats.learned.fetch_add(1, Relaxed);
                        writes.push(w);
                    }
                    Ok(None) => {}
                    Err(r) => {
                        self.stats.refuse(r);
                        tracing::debug!(device = route.device, name = %lesson.name, %addr, reason = r.name(), "not learned");
                    }
                }
            }
        }
        if !writes.is_empty() {
            self.dirty = true;
        }
        tracing::debug!(device = route.device, name = %lesson.name, addrs = lesson.addrs.len(), "learned");
        self.write(writes);
    }
}
