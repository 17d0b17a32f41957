//! The raw bpf(2) syscall, for what aya 0.14 does not wrap: batch updates
//! and deletes, counting walks, the maps a program uses, and the
//! benchmarks' floor programs.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

pub const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
pub const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
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

/// `union bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The ids of the maps the program `prog` uses. aya's `ProgramInfo::map_ids`
/// reopens the program by id first, which needs CAP_SYS_ADMIN; asking
/// through the descriptor in hand needs nothing more than having it.
pub fn prog_map_ids(prog: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    use aya_obj::generated::bpf_prog_info;
    // First the count, then the ids into a buffer of that size.
    // SAFETY: bpf_prog_info is plain data; all zero is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let ask = |info: &mut bpf_prog_info| {
        let mut attr = InfoAttr {
            bpf_fd: prog.as_raw_fd() as u32,
            info_len: std::mem::size_of::<bpf_prog_info>() as u32,
            info: info as *mut bpf_prog_info as u64,
        };
        // SAFETY: `info` is valid for `info_len` bytes, and its `map_ids`
        // (when set) for `nr_map_ids` ids.
        unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map(drop)
    };
    ask(&mut info)?;
    let mut ids = vec![0u32; info.nr_map_ids as usize];
    // SAFETY: as above.
    info = unsafe { std::mem::zeroed() };
    info.nr_map_ids = ids.len() as u32;
    info.map_ids = ids.as_mut_ptr() as u64;
    ask(&mut info)?;
    ids.truncate(info.nr_map_ids as usize);
    Ok(ids)
}
