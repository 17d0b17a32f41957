//! This host's own addresses (getifaddrs), read where the configuration
//! is checked and where the kernel is told them.

use std::net::IpAddr;

/// Every address configured on this host's interfaces (this network
/// namespace).
pub fn router_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut p = head;
    while !p.is_null() {
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            match unsafe { (*ifa.ifa_addr).sa_family } as i32 {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::from(
                        u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                    ));
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                }
                _ => {}
            }
        }
        p = ifa.ifa_next;
    }
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The configured resolvers that are not addresses of this host (all of
/// them when the addresses cannot be read).
pub fn remote(resolvers: &[IpAddr]) -> Vec<IpAddr> {
    let local = router_addresses().unwrap_or_default();
    resolvers
        .iter()
        .filter(|r| !local.contains(r))
        .copied()
        .collect()
}
