//! From the device: the decision for a packet a device sends, shared by
//! the XDP and the TC-ingress program. Identify the device, then allow by
//! live flow (one lookup settles most packets), learned address or static
//! rule, in that order; a packet denied before is denied again from the
//! denial cache (`denied.rs`) after the flow lookup.

use iotfence_common::{
    consts::{CONFIG_READY, DEVICE_LEARNING},
    keys::rule_scope,
    values::LearnedMatch,
    Config, DeniedSlot, DeviceInfo, Global, Mode, Reason, Verdict,
};

use crate::{
    clock,
    count::{add_violations, count, violation_key},
    denied, dns, events, features,
    flow::{flow_alive, flow_key, fragment_key, open_flow, remember_fragments},
    identity::identify,
    link::is_link_icmpv6,
    maps::{CONFIG, EGRESS4, EGRESS6, LEARNED, ROUTER_ADDRS, SCRATCH},
    parse::{parse, Bytes, Frag},
    redirect,
    scratch::Scratch,
    trunk::{other_vlan, Wire},
};

pub enum Action {
    Pass,
    /// Pass, and copy the frame to the daemon: a DNS query by this device.
    PassQuery(u32),
    /// Pass a DNS query redirected to the configured resolver
    /// (`redirect.rs`), once TC has rewritten it; `Some(device)`: then
    /// copy it to the daemon.
    PassRedirected(Option<u32>),
    Drop,
}

/// Which program judges: XDP can neither rewrite a redirected query nor,
/// before 5.18, copy one (`from_device_dns` at TC ingress does both).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Xdp,
    Tc,
}

/// Judges one device-originated packet, counts it, and reports violations.
#[inline(always)]
pub fn judge(b: &Bytes, len: u64, wire: Wire, hook: Hook) -> Action {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return Action::Drop;
    };
    let s = unsafe { &mut *s };
    s.h.reset();
    let cfg = match CONFIG.get(0) {
        Some(c) if c.flags & CONFIG_READY != 0 => c,
        // No complete policy yet: fail closed for IP, keep the link (ARP) up.
        _ => {
            return match parse(b, &mut s.h) {
                Ok(()) if s.h.family == 0 => Action::Pass,
                _ => Action::Drop,
            };
        }
    };
    let generation = (cfg.generation & 1) as u8;
    let parsed = parse(b, &mut s.h);
    if other_vlan(cfg.flags, wire, s.h.vlan) {
        return Action::Pass;
    }
    if parsed.is_ok() {
        redirect::query(&mut s.h);
    }
    // One clock read per packet, for every deadline this packet meets.
    let now = clock::now();
    // Most packets belong to a live flow: one lookup settles them, and the
    // flow names its device (identified when the flow opened).
    if parsed.is_ok() && s.h.family != 0 {
        if let Some((device, reason)) = established(cfg, s, now) {
            count(device, Verdict::Allowed, reason, len);
            return pass(s, device, now, hook);
        }
    }
    // Read before the lookups it guards (see `denied::epoch`).
    let epoch = denied::epoch();
    let mut slot = None;
    if parsed.is_ok() && denied::cacheable(&s.h) {
        denied::key(&s.h, &mut s.denied);
        if let Some(p) = denied::slot(&s.denied) {
            let d = unsafe { &mut *p };
            if let Some(c) = denied::hit(d, &s.denied, cfg.generation, epoch, len) {
                events::global_add(Global::DeniedCached);
                if denied::quiet(d, now) {
                    count(c.device.device, c.verdict, c.reason, len);
                    return denied_action(s, &c.device, c.verdict, now, hook);
                }
                return denied_packet(
                    cfg,
                    s,
                    &c.device,
                    c.verdict,
                    c.reason,
                    len,
                    now,
                    hook,
                    Some(d),
                );
            }
            slot = Some(d);
        }
    }
    let dev = identify(generation, s, false);
    let reason = match parsed {
        Err(reason) => reason,
        Ok(()) => decide(generation, &dev, s, now),
    };
    let verdict = if reason.allows() {
        Verdict::Allowed
    } else if dev.mode == Mode::Audit as u8 {
        Verdict::Audited
    } else {
        Verdict::Dropped
    };
    if verdict == Verdict::Allowed {
        count(dev.device, verdict, reason, len);
        return pass(s, dev.device, now, hook);
    }
    if verdict == Verdict::Audited && dev.flags & DEVICE_LEARNING != 0 {
        return learning_packet(s, &dev, reason, len, now, hook);
    }
    match slot {
        Some(d) => {
            denied::claim(
                d,
                &s.denied,
                &s.h,
                &dev,
                verdict,
                reason,
                cfg.generation,
                epoch,
                len,
            );
            denied_packet(cfg, s, &dev, verdict, reason, len, now, hook, Some(d))
        }
        None => {
            add_violations(violation_key(dev.device, verdict, &s.h), 1, len);
            denied_packet(cfg, s, &dev, verdict, reason, len, now, hook, None)
        }
    }
}

/// A packet denied (or audited), its violation already counted: the
/// counter, the rate-limited event (with what `slot` held back; the slot
/// goes quiet when the limit is exhausted), the action.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "inlined; each is read once")]
fn denied_packet(
    cfg: &Config,
    s: &mut Scratch,
    dev: &DeviceInfo,
    verdict: Verdict,
    reason: Reason,
    len: u64,
    now: u64,
    hook: Hook,
    slot: Option<&mut DeniedSlot>,
) -> Action {
    count(dev.device, verdict, reason, len);
    s.mac.generation = 0;
    s.mac._pad = 0;
    s.mac.mac = s.h.src_mac;
    match slot {
        Some(d) => {
            let pending = denied::take_pending(d);
            if let Some(resume) =
                events::report(cfg, dev, &s.h, &s.mac, verdict, reason, now, pending)
            {
                denied::quiet_until(d, resume);
            }
        }
        None => {
            events::report(cfg, dev, &s.h, &s.mac, verdict, reason, now, 0);
        }
    }
    denied_action(s, dev, verdict, now, hook)
}

/// What a denied (dropped or audited) packet comes to.
#[inline(always)]
fn denied_action(
    s: &mut Scratch,
    dev: &DeviceInfo,
    verdict: Verdict,
    now: u64,
    hook: Hook,
) -> Action {
    match verdict {
        Verdict::Dropped => Action::Drop,
        _ => pass(s, dev.device, now, hook),
    }
}

/// An audited packet of a learning device: counted and reported past the
/// rate limit, then the flow is opened so the rest of it rides the flow
/// (one event per flow, not per packet). Never cached as a denial.
#[inline(always)]
fn learning_packet(
    s: &mut Scratch,
    dev: &DeviceInfo,
    reason: Reason,
    len: u64,
    now: u64,
    hook: Hook,
) -> Action {
    add_violations(violation_key(dev.device, Verdict::Audited, &s.h), 1, len);
    count(dev.device, Verdict::Audited, reason, len);
    if events::report_learning(dev, &s.h, reason, now) {
        open_flow(s, dev.device, now);
    }
    pass(s, dev.device, now, hook)
}

/// What `from_device_dns` (TC ingress beside the XDP judge, which passed
/// the packet) has to do: the headers of `b` in scratch slot 0 as the judge
/// saw them (a redirected query's destination already the configured
/// resolver), or `None` for a packet it leaves alone.
#[inline(always)]
pub fn beside_xdp(b: &Bytes, wire: Wire) -> Option<&'static mut Scratch> {
    let cfg = CONFIG.get(0)?;
    if cfg.flags & CONFIG_READY == 0 {
        return None;
    }
    let s = unsafe { &mut *SCRATCH.get_ptr_mut(0)? };
    s.h.reset();
    if parse(b, &mut s.h).is_err() || other_vlan(cfg.flags, wire, s.h.vlan) {
        return None;
    }
    redirect::query(&mut s.h);
    Some(s)
}

/// The device that sent the packet in `s` (see `beside_xdp`) when it is a
/// DNS query to a resolver the XDP judge could not copy (a redirected one,
/// or any before 5.18), identified as the judge identifies it, within its
/// query budget.
#[inline(always)]
pub fn query_beside_xdp(s: &mut Scratch) -> Option<u32> {
    if (!redirect::redirected(s) && features::xdp_load_bytes()) || !dns::is_query(&s.h) {
        return None;
    }
    let cfg = CONFIG.get(0)?;
    let device = identify((cfg.generation & 1) as u8, s, false).device;
    query_budget(s, device, clock::now()).then_some(device)
}

/// An allowed packet, and whether its program copies it as a DNS query
/// (within the sender's budget, which only a copy spends): TC always can;
/// XDP only with `bpf_xdp_load_bytes` and not a redirected query, which
/// TC rewrites first (`from_device_dns` copies those).
#[inline(always)]
fn pass(s: &mut Scratch, device: u32, now: u64, hook: Hook) -> Action {
    let redirected = redirect::redirected(s);
    let copies = match hook {
        Hook::Tc => true,
        Hook::Xdp => features::xdp_load_bytes() && !redirected,
    };
    let query = copies && dns::is_query(&s.h) && query_budget(s, device, now);
    if redirected {
        Action::PassRedirected(query.then_some(device))
    } else if query {
        Action::PassQuery(device)
    } else {
        Action::Pass
    }
}

/// `dns::query_budget` of the sender; the MAC key is built in the scratch.
#[inline(always)]
fn query_budget(s: &mut Scratch, device: u32, now: u64) -> bool {
    s.mac.generation = 0;
    s.mac._pad = 0;
    s.mac.mac = s.h.src_mac;
    dns::query_budget(device, &s.mac, now)
}

/// A packet of a live flow or of a fragment train a live flow started,
/// sent from the MAC that opened it: the flow's device and the reason.
/// Refreshes the flow. From another MAC it is judged as its sender.
#[inline(always)]
fn established(cfg: &Config, s: &mut Scratch, now: u64) -> Option<(u32, Reason)> {
    let h = &s.h;
    if h.frag == Frag::Later {
        fragment_key(h, &mut s.flow);
        let device = flow_alive(cfg, &s.flow, h, now)?;
        return Some((device, Reason::Fragment));
    }
    if !h.flow {
        return None;
    }
    flow_key(h, &mut s.flow);
    let device = flow_alive(cfg, &s.flow, h, now)?;
    remember_fragments(s, device, now);
    Some((device, Reason::Flow))
}

/// The decision for a packet no live flow covers.
#[inline(always)]
fn decide(generation: u8, dev: &DeviceInfo, s: &mut Scratch, now: u64) -> Reason {
    let h = &s.h;
    if h.family == 0 {
        return Reason::NotIp;
    }
    if is_link_icmpv6(h, || unsafe { ROUTER_ADDRS.get(&h.dst) }.is_some()) {
        return Reason::NeighborDiscovery;
    }
    if h.frag == Frag::Later {
        // `established` found no train for it.
        return Reason::UnknownFragment;
    }
    s.learned.device = dev.device;
    s.learned.addr = h.dst;
    let mut expired = false;
    if let Some(rules) = unsafe { LEARNED.get(&s.learned) } {
        match rules.check(h.proto, h.rule_port, now) {
            LearnedMatch::Allowed => {
                open_flow(s, dev.device, now);
                return Reason::Learned;
            }
            LearnedMatch::Expired => expired = true,
            LearnedMatch::None => {}
        }
    }
    let dst = h.dst;
    let rules = s.lpm(rule_scope(generation, dev.profile), dst, &EGRESS4, &EGRESS6);
    if let Some(rules) = rules {
        if rules.allows(s.h.proto, s.h.rule_port) {
            open_flow(s, dev.device, now);
            return Reason::Rule;
        }
    }
    if expired {
        Reason::Expired
    } else {
        Reason::NotAllowed
    }
}
