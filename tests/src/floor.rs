//! The floor of every datapath cost: an XDP program that only returns
//! XDP_PASS, loaded with raw BPF_PROG_LOAD and timed with the same
//! BPF_PROG_TEST_RUN as iotfence's programs, on the same packets. What
//! iotfence adds is its time minus this one.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_XDP: u32 = 6;

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-padded bpf_attr for `cmd` whose pointers
    // reference buffers that outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put_u32(a: &mut [u8], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(a: &mut [u8], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// `r0 = XDP_PASS; exit`.
pub fn empty_xdp() -> io::Result<OwnedFd> {
    // mov64 r0, 2 (opcode 0xb7); exit (0x95).
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 2, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
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
