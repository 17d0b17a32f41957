//! Frames as fast as one core sends them, from inside a namespace: raw
//! packet sockets that bypass the qdisc, many frames per system call.

/// Sends each of `frames` once (one sendmmsg(2) per 256) out of `ifindex`
/// of the calling thread's namespace; returns how many the kernel took.
pub fn send_frames(ifindex: u32, frames: &[Vec<u8>]) -> u64 {
    frames
        .chunks(256)
        .map(|chunk| {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            sendmmsg(ifindex, &refs)
        })
        .sum()
}

/// Sends `frame` `n` times with one sendmmsg(2) (a flood as fast as one
/// core makes it); returns how many the kernel took.
pub fn send_burst(ifindex: u32, frame: &[u8], n: usize) -> u64 {
    sendmmsg(ifindex, &vec![frame; n])
}

fn sendmmsg(ifindex: u32, frames: &[&[u8]]) -> u64 {
    thread_local! {
        static SOCK: i32 = unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            let one: i32 = 1;
            // PACKET_QDISC_BYPASS
            libc::setsockopt(fd, libc::SOL_PACKET, 20, (&one as *const i32).cast(), 4);
            fd
        };
    }
    let Some(first) = frames.first() else {
        return 0;
    };
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&first[..6]);
    let mut iovs: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut _,
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let fd = SOCK.with(|s| *s);
    let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    r.max(0) as u64
}
