//! Raw BPF syscalls for the benchmarks. The floor of every datapath cost is
//! an XDP program that only returns XDP_PASS, loaded with raw BPF_PROG_LOAD
//! and timed with the same BPF_PROG_TEST_RUN as iotfence's programs, on the
//! same packets: what iotfence adds is its time minus this one. The live
//! benchmark's generator and sink are the same one-instruction programs.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

pub(crate) fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: every caller's `attr` points at buffers that outlive the call.
    unsafe { iotfence::kernel::sys::bpf(cmd, attr) }
}

pub(crate) fn put_u32(a: &mut [u8], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_u64(a: &mut [u8], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// `r0 = XDP_PASS; exit`.
pub fn empty_xdp() -> io::Result<OwnedFd> {
    xdp_returning(XDP_PASS)
}

/// `r0 = action; exit`: the floor, and in the live benchmark the sink
/// (XDP_DROP).
pub fn xdp_returning(action: u32) -> io::Result<OwnedFd> {
    load_xdp(&[insn(0xb7, 0, 0, 0, action as i32), insn(0x95, 0, 0, 0, 0)])
}

/// One BPF instruction: opcode, registers, offset, immediate.
pub const fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    u64::from_le_bytes([op, (src << 4) | dst, o[0], o[1], i[0], i[1], i[2], i[3]])
}

/// Loads an XDP program given as raw instructions.
pub fn load_xdp(insns: &[u64]) -> io::Result<OwnedFd> {
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Opens a pinned program (or map) by its bpffs path.
pub fn open_pinned(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    let mut attr = [0u8; 16];
    put_u64(&mut attr, 0, c.as_ptr() as u64);
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: BPF_OBJ_GET returned a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches an XDP program to `ifindex` of the calling thread's network
/// namespace with a BPF link; detached when the returned fd closes.
pub fn attach_xdp(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; 64];
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 4, ifindex);
    put_u32(&mut attr, 8, BPF_XDP);
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: BPF_LINK_CREATE returned a new file descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Sends `frame` `count` times out of `ifindex` (of the calling thread's
/// namespace) as XDP_TX live frames of `prog` (BPF_F_TEST_XDP_LIVE_FRAMES):
/// an in-kernel generator, no socket or skb on the sending side.
pub fn send_live(prog: &OwnedFd, ifindex: u32, frame: &[u8], count: u32) -> io::Result<()> {
    // struct xdp_md: data, data_end (= the frame's size), data_meta,
    // ingress_ifindex, rx_queue_index, egress_ifindex.
    let mut ctx = [0u8; 24];
    put_u32(&mut ctx, 4, frame.len() as u32);
    put_u32(&mut ctx, 12, ifindex);
    let mut attr = [0u8; 80];
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, frame.len() as u32);
    put_u64(&mut attr, 16, frame.as_ptr() as u64);
    put_u32(&mut attr, 32, count);
    put_u32(&mut attr, 40, ctx.len() as u32);
    put_u64(&mut attr, 48, ctx.as_ptr() as u64);
    put_u32(&mut attr, 64, BPF_F_TEST_XDP_LIVE_FRAMES);
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(())
}

/// (return value, average ns per run) of `repeat` runs on `packet`.
pub fn time(prog: &OwnedFd, packet: &[u8], repeat: u32) -> io::Result<(u32, u64)> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut attr = [0u8; 80];
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, packet.len() as u32);
    put_u32(&mut attr, 12, out.len() as u32);
    put_u64(&mut attr, 16, packet.as_ptr() as u64);
    put_u64(&mut attr, 24, out.as_mut_ptr() as u64);
    put_u32(&mut attr, 32, repeat);
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    let retval = u32::from_ne_bytes(attr[4..8].try_into().unwrap());
    let duration = u32::from_ne_bytes(attr[36..40].try_into().unwrap());
    Ok((retval, duration as u64))
}

/// Pins `fd` at `path` (BPF_OBJ_PIN).
pub fn pin(fd: &OwnedFd, path: &std::path::Path) -> io::Result<()> {
    use std::os::{fd::AsRawFd, unix::ffi::OsStrExt};
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut attr = [0u8; 16];
    put_u64(&mut attr, 0, path.as_ptr() as u64);
    put_u32(&mut attr, 8, fd.as_raw_fd() as u32);
    bpf(6, &mut attr).map(drop)
}
