//! Servers the lab's internet namespace runs: a TCP greeter/echo and a UDP
//! echo that answers from the address it was asked on.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread,
    time::Duration,
};

use crate::netns::{enter_ns, Netns};

/// A TCP server greeting every client with "hello" and then echoing what
/// it sends, until dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(ns: &Netns, addr: &str, port: u16) -> anyhow::Result<Self> {
        let bind: SocketAddr = if addr.contains(':') {
            format!("[{addr}]:{port}").parse()?
        } else {
            format!("{addr}:{port}").parse()?
        };
        Self::bind(ns, bind)
    }

    /// Listens on every address of the namespace (IPv4 and IPv6).
    pub fn start_any(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        Self::bind(ns, format!("[::]:{port}").parse()?)
    }

    fn bind(ns: &Netns, bind: SocketAddr) -> anyhow::Result<Self> {
        let stop = serve_in(
            ns,
            move || {
                let l = TcpListener::bind(bind)?;
                l.set_nonblocking(true)?;
                Ok(l)
            },
            |l, flag| {
                while !flag.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nonblocking(false);
                            if s.write_all(b"hello").is_ok() {
                                let stop = flag.clone();
                                thread::spawn(move || echo(s, stop));
                            }
                        }
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            },
        )?;
        Ok(Self { stop })
    }
}

/// Runs a server on a thread inside `ns`: `open` binds its socket there
/// (its error is returned here, within 5 s), then `serve` runs until the
/// returned flag is set.
fn serve_in<S: 'static>(
    ns: &Netns,
    open: impl FnOnce() -> std::io::Result<S> + Send + 'static,
    serve: impl FnOnce(S, Arc<AtomicBool>) + Send + 'static,
) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let file = File::open(ns.path())?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        enter_ns(&file).expect("setns");
        match open() {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                serve(s, flag);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5))??;
    Ok(stop)
}

/// Echoes until the peer closes, an error, or the server stops.
fn echo(mut s: TcpStream, stop: Arc<AtomicBool>) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A UDP server echoing every datagram to its sender, until dropped. It
/// answers from the address the datagram was sent to (IPV6_PKTINFO, which
/// Linux also reports for IPv4 on a dual-stack socket): the internet
/// namespace owns whole prefixes (`ANY_V4`, `ANY_V6`), and a reply from its
/// primary address would not reach a connected client socket.
pub struct UdpEcho {
    stop: Arc<AtomicBool>,
}

impl UdpEcho {
    /// Listens on every address of the namespace (IPv4 and IPv6).
    pub fn start_any(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        let stop = serve_in(
            ns,
            move || udp_echo_socket(port),
            |s, flag| {
                let mut buf = [0u8; 2048];
                while !flag.load(Ordering::Relaxed) {
                    if let Some((n, peer, local)) = udp_recv_to(&s, &mut buf) {
                        let _ = udp_send_from(&s, &buf[..n], &peer, local);
                    }
                }
            },
        )?;
        Ok(Self { stop })
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// [::]:port, reporting each datagram's destination and free to answer from
/// addresses the namespace only routes as local (IPv6 needs FREEBIND there).
fn udp_echo_socket(port: u16) -> std::io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    let on: libc::c_int = 1;
    for opt in [libc::IPV6_RECVPKTINFO, libc::IPV6_FREEBIND] {
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IPV6,
                opt,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(s)
}

/// One datagram: its length, its sender and the address it was sent to
/// (IPv4 as mapped IPv6); `None` on timeout.
fn udp_recv_to(
    s: &std::net::UdpSocket,
    buf: &mut [u8],
) -> Option<(usize, libc::sockaddr_in6, libc::in6_addr)> {
    let mut peer: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 32];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut peer as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        let (level, kind) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            let info: libc::in6_pktinfo =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            return Some((n as usize, peer, info.ipi6_addr));
        }
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    None
}

/// Sends `data` to `peer` from the local address `from`.
fn udp_send_from(
    s: &std::net::UdpSocket,
    data: &[u8],
    peer: &libc::sockaddr_in6,
    from: libc::in6_addr,
) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (peer as *const libc::sockaddr_in6 as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    let info_len = std::mem::size_of::<libc::in6_pktinfo>() as u32;
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(info_len) } as _;
    let n = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::IPPROTO_IPV6;
        (*c).cmsg_type = libc::IPV6_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(info_len) as _;
        std::ptr::write_unaligned(
            libc::CMSG_DATA(c).cast(),
            libc::in6_pktinfo {
                ipi6_addr: from,
                ipi6_ifindex: 0,
            },
        );
        libc::sendmsg(s.as_raw_fd(), &msg, 0)
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
