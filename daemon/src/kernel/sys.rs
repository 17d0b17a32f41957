//! The raw bpf(2) syscall, for what aya 0.14 does not wrap: batch updates
//! and deletes, counting walks, and the benchmarks' floor programs.

use std::io;

pub const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
pub const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
pub const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
pub const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
pub const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Runs bpf(2) command `cmd` on `attr`, a zero-padded `union bpf_attr`;
/// returns what the kernel returned (an fd for commands that make one).
///
/// # Safety
/// Every pointer in `attr` must reference a buffer of the size `cmd`
/// expects, alive for the call.
pub unsafe fn bpf<A: ?Sized>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    let size = std::mem::size_of_val(attr) as u32;
    // SAFETY: the caller vouches for the pointers inside `attr`; the kernel
    // reads and writes at most `size` bytes of it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A as *mut u8, size) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
