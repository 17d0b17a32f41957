//! The reference allowlist: the least an XDP allowlist must do per packet,
//! written as raw instructions and loaded with BPF_PROG_LOAD like the floor
//! (`floor.rs`), so no choice of our compiler or of iotfence's code shapes
//! it. It parses Ethernet and IPv4 (any header length) or IPv6 (no
//! extension headers), looks the source MAC up in one hash map (→ profile),
//! then (profile, protocol, destination port, destination address) in a
//! second one; a hit passes, a miss or a short frame drops, non-IP passes.
//!
//! The datapath benchmark gates on iotfence's cost over the empty program
//! *relative to this program's* cost over it, measured side by side: both
//! are parsing plus hash lookups, so the CPU's speed at that work divides
//! out, where a ratio to the empty program alone measures the CPU (the empty
//! program costs ~35 ns on AMD EPYC hosts and 7-11 ns on Intel Xeon ones).

use std::{
    collections::HashMap,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::floor::{self, bpf, insn, put_u32, put_u64};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_TYPE_HASH: u32 = 1;
/// `ld_imm64`'s source register value naming a map by its fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;

/// Source MAC (6 bytes, 2 zero) → profile.
const DEVICE_KEY: usize = 8;
/// Profile (4), protocol (1), zero (1), destination port in network order
/// (2; 0 unless TCP/UDP), destination address (16; IPv4 in the first 4).
const RULE_KEY: usize = 24;
const DEVICES_MAX: u32 = 1024;
const RULES_MAX: u32 = 16384;
/// The one profile every allowed fixture's device gets.
const PROFILE: u32 = 1;

/// The loaded program and its two maps (kept open while it lives).
pub struct Reference {
    pub prog: OwnedFd,
    devices: OwnedFd,
    rules: OwnedFd,
}

impl Reference {
    pub fn load() -> io::Result<Self> {
        let devices = create_hash(DEVICE_KEY as u32, 4, DEVICES_MAX)?;
        let rules = create_hash(RULE_KEY as u32, 4, RULES_MAX)?;
        let prog = floor::load_xdp(&program(devices.as_raw_fd(), rules.as_raw_fd()))?;
        Ok(Self {
            prog,
            devices,
            rules,
        })
    }

    /// Makes `frame` pass: its source MAC becomes a device of the profile,
    /// and its (protocol, port, destination) a rule of it. Frames the
    /// reference does not parse (VLAN tags, non-IP) are left alone.
    pub fn allow(&self, frame: &[u8]) -> io::Result<()> {
        let Some((device, rule)) = keys(frame) else {
            return Ok(());
        };
        update(&self.devices, &device, &PROFILE.to_ne_bytes())?;
        update(&self.rules, &rule, &1u32.to_ne_bytes())
    }

    /// (verdict, average ns per run) of `repeat` runs on `frame`.
    pub fn time(&self, frame: &[u8], repeat: u32) -> io::Result<(u32, u64)> {
        floor::time(&self.prog, frame, repeat)
    }
}

/// The keys the program builds for `frame`, computed the same way in
/// userspace; `None` where the program does not look anything up.
pub fn keys(f: &[u8]) -> Option<([u8; DEVICE_KEY], [u8; RULE_KEY])> {
    let mut device = [0u8; DEVICE_KEY];
    device[..6].copy_from_slice(f.get(6..12)?);
    let mut rule = [0u8; RULE_KEY];
    rule[..4].copy_from_slice(&PROFILE.to_ne_bytes());
    let (proto, l4) = match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
        0x0800 => {
            f.get(14..34)?;
            rule[8..12].copy_from_slice(&f[30..34]);
            (f[23], 14 + ((f[14] & 0xf) as usize) * 4)
        }
        0x86dd => {
            f.get(14..54)?;
            rule[8..24].copy_from_slice(&f[38..54]);
            (f[20], 54)
        }
        _ => return None,
    };
    rule[4] = proto;
    if proto == 6 || proto == 17 {
        rule[6..8].copy_from_slice(f.get(l4 + 2..l4 + 4)?);
    }
    Some((device, rule))
}

/// A label-resolving assembler for the few jumps of `program`.
#[derive(Default)]
struct Asm {
    code: Vec<u64>,
    labels: HashMap<&'static str, usize>,
    jumps: Vec<(usize, &'static str)>,
}

impl Asm {
    fn op(&mut self, i: u64) -> &mut Self {
        self.code.push(i);
        self
    }

    /// A conditional (or, with op 0x05, unconditional) jump to `label`.
    fn jump(&mut self, op: u8, dst: u8, src: u8, imm: i32, label: &'static str) -> &mut Self {
        self.jumps.push((self.code.len(), label));
        self.op(insn(op, dst, src, 0, imm))
    }

    fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.insert(name, self.code.len());
        self
    }

    /// `ld_imm64 dst, map fd` (two instruction slots).
    fn map(&mut self, dst: u8, fd: i32) -> &mut Self {
        self.op(insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, fd))
            .op(insn(0, 0, 0, 0, 0))
    }

    fn finish(mut self) -> Vec<u64> {
        for (at, label) in std::mem::take(&mut self.jumps) {
            let to = self.labels[label] as i64;
            let off = (to - at as i64 - 1) as i16;
            let o = off.to_le_bytes();
            self.code[at] = (self.code[at] & !0xffff_0000)
                | (u64::from_le_bytes([0, 0, o[0], o[1], 0, 0, 0, 0]));
        }
        self.code
    }
}

// Opcodes (eBPF ISA): 64-bit ALU, loads and stores by size, jumps.
const MOV: u8 = 0xbf;
const MOV_K: u8 = 0xb7;
const ADD_K: u8 = 0x07;
const ADD: u8 = 0x0f;
const AND_K: u8 = 0x57;
const LSH_K: u8 = 0x67;
const LDX_B: u8 = 0x71;
const LDX_H: u8 = 0x69;
const LDX_W: u8 = 0x61;
const STX_B: u8 = 0x73;
const STX_H: u8 = 0x6b;
const STX_W: u8 = 0x63;
const ST_DW: u8 = 0x7a;
const JA: u8 = 0x05;
const JEQ_K: u8 = 0x15;
const JNE_K: u8 = 0x55;
const JGT: u8 = 0x2d;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const FP: u8 = 10;

/// The program. Registers: r7 = data, r8 = data_end, r9 = EtherType as
/// loaded (network order in a little-endian load), r2 = L4 header.
fn program(devices: i32, rules: i32) -> Vec<u64> {
    let ipv4 = u16::from_be(0x0800) as i32;
    let ipv6 = u16::from_be(0x86dd) as i32;
    let mut a = Asm::default();
    a.op(insn(LDX_W, 7, 1, 0, 0))
        .op(insn(LDX_W, 8, 1, 4, 0))
        .op(insn(MOV, 2, 7, 0, 0))
        .op(insn(ADD_K, 2, 0, 0, 14))
        .jump(JGT, 2, 8, 0, "drop")
        .op(insn(LDX_H, 9, 7, 12, 0))
        .jump(JEQ_K, 9, 0, ipv4, "ip")
        .jump(JEQ_K, 9, 0, ipv6, "ip")
        .jump(JA, 0, 0, 0, "pass")
        // Source MAC → profile.
        .label("ip")
        .op(insn(ST_DW, FP, 0, -8, 0));
    for (i, off) in [6, 8, 10].into_iter().enumerate() {
        a.op(insn(LDX_H, 3, 7, off, 0))
            .op(insn(STX_H, FP, 3, -8 + 2 * i as i16, 0));
    }
    a.map(1, devices)
        .op(insn(MOV, 2, FP, 0, 0))
        .op(insn(ADD_K, 2, 0, 0, -8))
        .op(insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM))
        .jump(JEQ_K, 0, 0, 0, "drop")
        .op(insn(LDX_W, 3, 0, 0, 0))
        .op(insn(ST_DW, FP, 0, -32, 0))
        .op(insn(ST_DW, FP, 0, -24, 0))
        .op(insn(ST_DW, FP, 0, -16, 0))
        .op(insn(STX_W, FP, 3, -32, 0))
        .jump(JEQ_K, 9, 0, ipv6, "v6")
        // IPv4: protocol, destination, header length.
        .op(insn(MOV, 2, 7, 0, 0))
        .op(insn(ADD_K, 2, 0, 0, 34))
        .jump(JGT, 2, 8, 0, "drop")
        .op(insn(LDX_B, 4, 7, 23, 0))
        .op(insn(LDX_W, 3, 7, 30, 0))
        .op(insn(STX_W, FP, 3, -24, 0))
        .op(insn(LDX_B, 5, 7, 14, 0))
        .op(insn(AND_K, 5, 0, 0, 0xf))
        .op(insn(LSH_K, 5, 0, 0, 2))
        .op(insn(MOV, 2, 7, 0, 0))
        .op(insn(ADD_K, 2, 0, 0, 14))
        .op(insn(ADD, 2, 5, 0, 0))
        .jump(JA, 0, 0, 0, "ports")
        // IPv6: next header, destination.
        .label("v6")
        .op(insn(MOV, 2, 7, 0, 0))
        .op(insn(ADD_K, 2, 0, 0, 54))
        .jump(JGT, 2, 8, 0, "drop")
        .op(insn(LDX_B, 4, 7, 20, 0));
    for i in 0..4i16 {
        a.op(insn(LDX_W, 3, 7, 38 + 4 * i, 0))
            .op(insn(STX_W, FP, 3, -24 + 4 * i, 0));
    }
    a.label("ports")
        .op(insn(STX_B, FP, 4, -28, 0))
        .jump(JEQ_K, 4, 0, 6, "l4")
        .jump(JNE_K, 4, 0, 17, "lookup")
        .label("l4")
        .op(insn(MOV, 3, 2, 0, 0))
        .op(insn(ADD_K, 3, 0, 0, 4))
        .jump(JGT, 3, 8, 0, "drop")
        .op(insn(LDX_H, 3, 2, 2, 0))
        .op(insn(STX_H, FP, 3, -26, 0))
        // (profile, protocol, port, destination) → allowed.
        .label("lookup")
        .map(1, rules)
        .op(insn(MOV, 2, FP, 0, 0))
        .op(insn(ADD_K, 2, 0, 0, -32))
        .op(insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM))
        .jump(JEQ_K, 0, 0, 0, "drop")
        .label("pass")
        .op(insn(MOV_K, 0, 0, 0, floor::XDP_PASS as i32))
        .op(insn(EXIT, 0, 0, 0, 0))
        .label("drop")
        .op(insn(MOV_K, 0, 0, 0, floor::XDP_DROP as i32))
        .op(insn(EXIT, 0, 0, 0, 0));
    a.finish()
}

/// A BPF hash map (key and value sizes in bytes); also used to fake a
/// pinned map of another layout.
pub fn create_hash(key: u32, value: u32, max: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 72];
    for (at, v) in [(0, BPF_MAP_TYPE_HASH), (4, key), (8, value), (12, max)] {
        put_u32(&mut attr, at, v);
    }
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: BPF_MAP_CREATE returned a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = [0u8; 32];
    put_u32(&mut attr, 0, map.as_raw_fd() as u32);
    put_u64(&mut attr, 8, key.as_ptr() as u64);
    put_u64(&mut attr, 16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)?;
    Ok(())
}
