//! Violation events: a per-device GCRA rate limit in front of the ring
//! buffer, so one flooding device cannot starve the daemon of the others;
//! unknown devices each by source MAC, so one stranger cannot silence the
//! reports of every other.

use iotfence_common::{
    Config, DeviceInfo, Global, MacKey, RateState, Reason, Verdict, ViolationEvent,
};

use crate::{
    maps::{EVENTS, GLOBAL, RATE, RATE_MAC},
    parse::Headers,
};

#[inline(always)]
pub fn global_add(g: Global) {
    global_add_n(g, 1);
}

#[inline(always)]
pub fn global_add_n(g: Global, n: u64) {
    if let Some(c) = GLOBAL.get_ptr_mut(g.index()) {
        unsafe { *c += n };
    }
}

/// The rate state of a known device by id, of an unknown one by `mac`
/// (created with a full budget when first seen).
#[inline(always)]
fn rate_state(device: u32, mac: &MacKey) -> Option<*mut RateState> {
    if device != 0 {
        return RATE.get_ptr_mut(device);
    }
    if let Some(p) = RATE_MAC.get_ptr_mut(mac) {
        return Some(p);
    }
    let _ = RATE_MAC.insert(mac, &RateState::default(), 0);
    RATE_MAC.get_ptr_mut(mac)
}

/// `now` is `clock::now()` read for this packet; `mac`: the sender's, as a
/// key in the scratch (generation 0); `pending`: events a denial-cache slot
/// suppressed without asking (added to the count here). Returns, when this
/// event is suppressed too, the time from which the device may report
/// again: until then every event of it would be suppressed, so the slot
/// suppresses them without reading the shared rate state.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "inlined; each is read once")]
pub fn report(
    cfg: &Config,
    dev: &DeviceInfo,
    h: &Headers,
    mac: &MacKey,
    verdict: Verdict,
    reason: Reason,
    now: u64,
    pending: u32,
) -> Option<u64> {
    let Some(state) = rate_state(dev.device, mac) else {
        global_add_n(Global::EventsSuppressed, pending as u64);
        return None;
    };
    let state = unsafe { &mut *state };
    if pending != 0 {
        state.suppressed = state.suppressed.wrapping_add(pending);
        global_add_n(Global::EventsSuppressed, pending as u64);
    }
    let tat = if state.tat_ns > now {
        state.tat_ns
    } else {
        now
    };
    if tat - now > cfg.event_burst_ns {
        state.suppressed = state.suppressed.wrapping_add(1);
        global_add(Global::EventsSuppressed);
        return Some(tat - cfg.event_burst_ns);
    }
    state.tat_ns = tat + cfg.event_interval_ns;
    if emit(dev, h, verdict, reason, now, state.suppressed) {
        state.suppressed = 0;
    } else {
        state.suppressed = state.suppressed.wrapping_add(1);
    }
    None
}

/// A learning device's event (`DEVICE_LEARNING`): past the rate limit,
/// since the daemon builds the device's draft profile from these. False
/// when the ring was full (the caller then opens no flow, so the flow's
/// next packet is reported instead).
#[inline(always)]
pub fn report_learning(dev: &DeviceInfo, h: &Headers, reason: Reason, now: u64) -> bool {
    emit(dev, h, Verdict::Audited, reason, now, 0)
}

/// One event into the ring; false (counted) when it is full.
#[inline(always)]
fn emit(
    dev: &DeviceInfo,
    h: &Headers,
    verdict: Verdict,
    reason: Reason,
    now: u64,
    suppressed: u32,
) -> bool {
    let Some(mut entry) = EVENTS.reserve::<ViolationEvent>(0) else {
        global_add(Global::EventsRingFull);
        return false;
    };
    entry.write(ViolationEvent {
        time_ns: now,
        device: dev.device,
        suppressed,
        src: h.src,
        dst: h.dst,
        sport: h.sport,
        dport: h.dport,
        profile: dev.profile,
        proto: h.proto,
        family: h.family,
        verdict: verdict as u8,
        reason: reason as u8,
        src_mac: h.src_mac,
    });
    entry.submit(0);
    global_add(Global::EventsSent);
    true
}
