//! TC egress on the IoT interface (router -> device): records inbound flows
//! that the device's profile allows, so the device's replies pass the egress
//! decision as part of a known flow, and picks out DNS answers to hold.

use iotfence_common::{
    consts::{CONFIG_READY, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, TCP_FLAG_ACK, TCP_FLAG_SYN},
    keys::rule_scope,
    DeviceInfo, Global,
};

use crate::{
    dns::{self, Answer},
    events::global_add,
    flow::{insert_flow, reply_key, same_mac},
    identity::identify,
    maps::{CONFIG, FLOWS, INBOUND4, INBOUND6, SCRATCH},
    parse::{parse, Bytes, Frag, Headers},
    redirect,
    scratch::Scratch,
    trunk::{other_vlan, Wire},
};

/// `from_stack`: the router's own stack sent the frame (it was not routed
/// in from another interface). Also says whether the frame answers a
/// redirected query (`redirect::answer`; scratch slot 1 holds its headers).
#[inline(always)]
pub fn observe(b: &Bytes, from_stack: bool, wire: Wire) -> (Answer, bool) {
    let Some(cfg) = CONFIG.get(0) else {
        return (Answer::Pass, false);
    };
    if cfg.flags & CONFIG_READY == 0 {
        return (Answer::Pass, false);
    }
    let Some(s) = SCRATCH.get_ptr_mut(1) else {
        return (Answer::Pass, false);
    };
    let s = unsafe { &mut *s };
    s.h.reset();
    if parse(b, &mut s.h).is_err()
        || other_vlan(cfg.flags, wire, s.h.vlan)
        || s.h.family == 0
        || !s.h.flow
    {
        return (Answer::Pass, false);
    }
    redirect::answer(s);
    let redirected = redirect::redirected(s);
    let generation = (cfg.generation & 1) as u8;
    let dev = identify(generation, s, true);
    match dns::classify_answer(s, dev.device, from_stack) {
        Answer::Pass => {}
        other => return (other, redirected),
    }
    if s.h.frag == Frag::Later {
        return (Answer::Pass, redirected);
    }
    record_inbound(generation, &dev, s);
    (Answer::Pass, redirected)
}

/// The address an answer `observe` found redirected must carry as its
/// source (scratch slot 1).
#[inline(always)]
pub fn asked() -> Option<&'static [u8; 16]> {
    let s = SCRATCH.get_ptr_mut(1)?;
    Some(unsafe { &(*s).h.asked })
}

#[inline(always)]
fn record_inbound(generation: u8, dev: &DeviceInfo, s: &mut Scratch) {
    let src = s.h.src;
    let Some(rules) = s.lpm(
        rule_scope(generation, dev.profile),
        src,
        &INBOUND4,
        &INBOUND6,
    ) else {
        return;
    };
    let h = &s.h;
    if !rules.allows(h.proto, h.rule_port) || !opens_connection(h) {
        return;
    }
    reply_key(h, &mut s.flow);
    let now = crate::clock::now();
    let mac = h.dst_mac;
    if let Some(v) = FLOWS.get_ptr_mut(&s.flow) {
        if unsafe { same_mac(&(*v).mac, &mac) } {
            unsafe { (*v).last_seen_ns = now };
            return;
        }
    }
    insert_flow(s, dev.device, mac, now, 1);
    global_add(Global::InboundFlows);
}

/// Whether an inbound packet starts a connection to the device, as an
/// inbound allowance means: a TCP SYN (not a SYN-ACK, which answers the
/// device's own connection attempt: that is outbound and judged by egress
/// rules), an ICMP echo request (not a reply); UDP and other protocols
/// have no such marker.
#[inline(always)]
fn opens_connection(h: &Headers) -> bool {
    match h.proto {
        PROTO_TCP => h.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN,
        PROTO_ICMP | PROTO_ICMPV6 => !h.echo || h.icmp_type == 8 || h.icmp_type == 128,
        _ => true,
    }
}
