//! iotfence kernel programs. Each is a thin shim over shared logic, named
//! by direction relative to the device: `from_device` (the judge),
//! `to_device` (the observer), on `identity`, `flow`, `count`, `dns`.
//! - `from_device_xdp` / `from_device_tc`: judge packets devices send (XDP or
//!   TC ingress on the IoT-facing interface; same decision code).
//! - `from_device_dns`: TC ingress beside the XDP judge, where XDP cannot
//!   copy DNS queries (kernels before 5.18) or rewrite redirected ones
//!   (`dns.redirect`, see `redirect`).
//! - `to_device_tc`: TC egress on the same interface (towards devices):
//!   records inbound flows the device's profile allows and holds DNS
//!   answers from trusted resolvers for the daemon to learn from.
#![no_std]
#![no_main]
// Map keys live in the per-CPU scratch (`scratch::Scratch`) and are passed by
// reference: by value, as clippy suggests, they would be copied onto the
// 512-byte BPF stack, where LLVM merges their byte stores into unaligned
// wide ones the verifier refuses (see `.cargo/config.toml`).
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "keys stay in the scratch map, off the BPF stack"
)]

mod clock;
mod count;
mod denied;
mod dns;
mod events;
mod features;
mod flow;
mod from_device;
mod identity;
mod link;
mod maps;
mod parse;
mod redirect;
mod scratch;
mod to_device;
mod trunk;

use aya_ebpf::{
    bindings::{xdp_action, TC_ACT_SHOT, TC_ACT_UNSPEC},
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};

use crate::{
    dns::Answer,
    from_device::{Action, Hook},
    parse::Bytes,
    trunk::Wire,
};

/// Bytes of headers a TC program needs in the linear part of the skb.
const TC_PULL_BYTES: u32 = 256;

// Each program's body is `#[inline(always)]` into its section's entry:
// left to LLVM, a body that grew past the inlining threshold became a
// BPF-to-BPF call on every packet (measured: +6-10 ns on every path;
// `daemon/src/kernel/object.rs`'s test checks there is no such call).
#[xdp]
#[inline(always)]
pub fn from_device_xdp(ctx: XdpContext) -> u32 {
    let b = Bytes {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let md = ctx.ctx;
    let ifindex = unsafe { (*md).ingress_ifindex };
    // XDP sees tags in the frame (unless the NIC stripped them).
    let wire = Wire {
        ifindex,
        skb_vlan: None,
    };
    match from_device::judge(&b, b.len() as u64, wire, Hook::Xdp) {
        // A redirected query is rewritten (and copied) by `from_device_dns`.
        Action::Pass | Action::PassRedirected(_) => xdp_action::XDP_PASS,
        Action::PassQuery(device) => {
            // Without the helper (before 5.18) the judge asks for no copy
            // (`from_device_dns` copies at TC ingress instead), but the
            // verifier must see the call guarded by the frozen feature bit
            // itself to prune it: 5.10 refuses an unknown helper even on a
            // path that never runs.
            if features::xdp_load_bytes() {
                dns::copy_query(device, ifindex, b.len() as u32, |dst, n| unsafe {
                    bpf_xdp_load_bytes(md, 0, dst.cast(), n)
                });
            }
            xdp_action::XDP_PASS
        }
        Action::Drop => xdp_action::XDP_DROP,
    }
}

#[classifier]
#[inline(always)]
pub fn from_device_tc(mut ctx: TcContext) -> i32 {
    linearize(&ctx);
    let b = Bytes {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let copy = match from_device::judge(&b, ctx.len() as u64, tc_wire(&ctx), Hook::Tc) {
        // UNSPEC lets later TC programs on the hook run too.
        Action::Pass => return TC_ACT_UNSPEC,
        Action::Drop => return TC_ACT_SHOT,
        Action::PassQuery(device) => Some(device),
        Action::PassRedirected(copy) => {
            if !redirect::rewrite_query(&mut ctx) {
                return TC_ACT_SHOT;
            }
            copy
        }
    };
    if let Some(device) = copy {
        copy_query(&ctx, device);
    }
    TC_ACT_UNSPEC
}

/// TC ingress beside the XDP judge, for what XDP cannot do with a packet
/// it passed: rewrite a redirected DNS query (`dns.redirect`), and copy
/// DNS queries on kernels without `bpf_xdp_load_bytes` (before 5.18).
/// Judges nothing; everything goes on.
#[classifier]
#[inline(always)]
pub fn from_device_dns(mut ctx: TcContext) -> i32 {
    linearize(&ctx);
    let b = Bytes {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let Some(s) = from_device::beside_xdp(&b, tc_wire(&ctx)) else {
        return TC_ACT_UNSPEC;
    };
    if redirect::redirected(s) && !redirect::rewrite_query(&mut ctx) {
        return TC_ACT_SHOT;
    }
    if let Some(device) = from_device::query_beside_xdp(s) {
        copy_query(&ctx, device);
    }
    TC_ACT_UNSPEC
}

/// Copies the (possibly rewritten) frame as device `device`'s DNS query.
#[inline(always)]
fn copy_query(ctx: &TcContext, device: u32) {
    let skb = ctx.skb.skb;
    let ifindex = unsafe { (*skb).ifindex };
    dns::copy_query(device, ifindex, ctx.len(), |dst, n| unsafe {
        bpf_skb_load_bytes(skb as *const _, 0, dst.cast(), n)
    });
}

#[classifier]
#[inline(always)]
pub fn to_device_tc(mut ctx: TcContext) -> i32 {
    let skb = ctx.skb.skb;
    if dns::reinjected(unsafe { (*skb).mark }) {
        return TC_ACT_UNSPEC;
    }
    linearize(&ctx);
    // A frame the router forwards keeps the index of the interface it came
    // in on; one the router's own stack sent has none.
    let from_stack = unsafe { (*skb).ingress_ifindex } == 0;
    let (answer, redirected) = to_device::observe(
        &Bytes {
            start: ctx.data(),
            end: ctx.data_end(),
        },
        from_stack,
        tc_wire(&ctx),
    );
    let device = match answer {
        Answer::Hold(device) => device,
        Answer::Forged => return TC_ACT_SHOT,
        Answer::Pass | Answer::Unheld => return deliver(&mut ctx, redirected),
    };
    let (ifindex, gso_segs) = unsafe { ((*skb).ifindex, (*skb).gso_segs) };
    // A held answer to a redirected query goes to the daemon as the
    // resolver sent it (what learning matches); the daemon rewrites it.
    let asked = if redirected { to_device::asked() } else { None };
    let held = dns::hold(
        device,
        ifindex,
        ctx.len(),
        gso_segs,
        asked,
        |dst, n| unsafe { bpf_skb_load_bytes(skb as *const _, 0, dst.cast(), n) },
    );
    if held {
        TC_ACT_SHOT
    } else {
        deliver(&mut ctx, redirected)
    }
}

/// Lets a frame towards a device go, an answer to a redirected query with
/// the source address the device asked.
#[inline(always)]
fn deliver(ctx: &mut TcContext, redirected: bool) -> i32 {
    if redirected && !redirect::rewrite_answer(ctx) {
        return TC_ACT_SHOT;
    }
    TC_ACT_UNSPEC
}

/// Where a TC program sees the frame: the kernel has moved the outer VLAN
/// tag (received, or to be sent by a VLAN device with tag offload) out of
/// the frame into the skb.
#[inline(always)]
fn tc_wire(ctx: &TcContext) -> Wire {
    let skb = ctx.skb.skb;
    let (ifindex, present, tci) = unsafe { ((*skb).ifindex, (*skb).vlan_present, (*skb).vlan_tci) };
    Wire {
        ifindex,
        skb_vlan: (present != 0).then_some((tci & 0x0fff) as u16),
    }
}

/// Makes the headers readable through direct packet access; a packet whose
/// headers stay out of reach then fails to parse and is judged malformed.
#[inline(always)]
fn linearize(ctx: &TcContext) {
    let want = if ctx.len() < TC_PULL_BYTES {
        ctx.len()
    } else {
        TC_PULL_BYTES
    };
    if ((ctx.data_end() - ctx.data()) as u32) < want {
        let _ = ctx.pull_data(want);
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
