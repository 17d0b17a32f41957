//! Interface lifecycle: the kernel severs XDP and TCX links (and removes
//! clsact filters) when a netdev goes away, and nothing attaches to a new
//! interface of the same name by itself. The daemon listens to rtnetlink's
//! link group and re-attaches when a configured interface appears with a
//! new index; while it is missing, `/readyz` says not ready and
//! `iotfence_interface_missing` says which.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
};

const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

/// What happened to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Exists (new, renamed to this name, or changed state) with `index`.
    Present { name: String, index: u32 },
    /// Deleted.
    Gone { name: String, index: u32 },
}

/// A non-blocking rtnetlink socket subscribed to link changes.
pub struct LinkWatch {
    fd: OwnedFd,
}

impl AsRawFd for LinkWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl LinkWatch {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain socket/bind calls on a zeroed sockaddr_nl.
        unsafe {
            let raw = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            );
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            sa.nl_groups = RTMGRP_LINK;
            let rc = libc::bind(
                raw,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Self { fd })
        }
    }

    /// Every event queued now (empty when none). A full socket buffer
    /// (ENOBUFS: events were lost) is reported as an error, so the caller
    /// re-checks every interface.
    pub fn read(&self) -> io::Result<Vec<LinkEvent>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buf` is valid for its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(out),
                    _ => Err(e),
                };
            }
            out.extend(parse(&buf[..n as usize]));
        }
    }
}

/// The link events in one datagram; anything malformed is skipped.
pub fn parse(mut b: &[u8]) -> Vec<LinkEvent> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(b[4..6].try_into().unwrap());
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        let msg = &b[NLMSG_HDRLEN..len];
        if (kind == RTM_NEWLINK || kind == RTM_DELLINK) && msg.len() >= IFINFOMSG_LEN {
            let index = i32::from_ne_bytes(msg[4..8].try_into().unwrap()) as u32;
            if let Some(name) = ifname(&msg[IFINFOMSG_LEN..]) {
                out.push(if kind == RTM_NEWLINK {
                    LinkEvent::Present { name, index }
                } else {
                    LinkEvent::Gone { name, index }
                });
            }
        }
        b = &b[align4(len).min(b.len())..];
    }
    out
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// IFLA_IFNAME among the route attributes.
fn ifname(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == IFLA_IFNAME {
            let v = &attrs[4..len];
            let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
            return String::from_utf8(v[..end].to_vec()).ok();
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    None
}

/// The index of `name` in this network namespace, if it exists.
pub fn index_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}

/// Whether the NIC strips VLAN tags on receive (`ethtool -k`: rx-vlan-offload),
/// which hides them from XDP (TC reads them from the skb).
pub fn strips_vlan_tags(name: &str) -> io::Result<bool> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GFLAGS: u32 = 0x25;
    const ETH_FLAG_RXVLAN: u32 = 1 << 8;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    let mut req = IfReq {
        name: [0; 16],
        data: &mut value,
        _pad: [0; 16],
    };
    let bytes = name.as_bytes();
    if bytes.len() >= 16 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: a datagram socket we own, closed when `sock` drops.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: `req` and the value it points to outlive the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value.data & ETH_FLAG_RXVLAN != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, index: i32, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let alen = 4 + name.len() + 1;
        attr.extend_from_slice(&(alen as u16).to_ne_bytes());
        attr.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.push(0);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = NLMSG_HDRLEN + IFINFOMSG_LEN + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        let mut info = [0u8; IFINFOMSG_LEN];
        info[4..8].copy_from_slice(&index.to_ne_bytes());
        m.extend_from_slice(&info);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn new_and_deleted_links_are_read_and_garbage_is_skipped() {
        let mut d = msg(RTM_NEWLINK, 7, "iot0");
        d.extend(msg(RTM_DELLINK, 5, "eth0.20"));
        d.extend(msg(24, 1, "route")); // RTM_NEWROUTE: ignored
        assert_eq!(
            parse(&d),
            vec![
                LinkEvent::Present {
                    name: "iot0".into(),
                    index: 7
                },
                LinkEvent::Gone {
                    name: "eth0.20".into(),
                    index: 5
                },
            ]
        );
        let mut cut = msg(RTM_NEWLINK, 7, "iot0");
        cut.truncate(20);
        assert!(parse(&cut).is_empty());
        assert!(parse(&[0xff; 3]).is_empty());
    }
}
