//! What `explain` is asked: a device (by name, MAC or address) and a
//! destination (an address or a domain name, a port and a protocol).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use iotfence_common::{
    consts::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    Mac,
};

use crate::policy::compile::{Compiled, CompiledDevice};

/// A MAC no device has, for a device known only by address.
const ANY_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0];

/// The device a question is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A device entry of the policy, by name.
    Device(u32),
    Mac([u8; 6]),
    Addr(IpAddr),
}

impl Target {
    /// `text`: a device name, a MAC, or an address.
    pub fn parse(policy: &Compiled, text: &str) -> Result<Self, String> {
        if let Some(d) = policy.devices.iter().find(|d| d.name == text) {
            return Ok(Target::Device(d.id));
        }
        if let Ok(m) = text.parse::<Mac>() {
            return Ok(Target::Mac(m.0));
        }
        if let Ok(a) = text.parse::<IpAddr>() {
            return Ok(Target::Addr(a));
        }
        Err(format!(
            "`{text}` is no device of the policy, nor a MAC or an address"
        ))
    }

    /// The source MAC and address of a packet from this device to `dst`
    /// (its own address of `dst`'s family where it has one).
    pub fn source(&self, policy: &Compiled, dst: IpAddr) -> ([u8; 6], IpAddr) {
        let device = |id: u32| policy.devices.iter().find(|d| d.id == id);
        match self {
            Target::Device(id) => match device(*id) {
                Some(d) => (d.mac.unwrap_or(ANY_MAC), own_address(d, dst)),
                None => (ANY_MAC, unspecified(dst)),
            },
            Target::Mac(m) => match policy.devices.iter().find(|d| d.mac == Some(*m)) {
                Some(d) => (*m, own_address(d, dst)),
                None => (*m, unspecified(dst)),
            },
            Target::Addr(a) => {
                let owner = policy
                    .devices
                    .iter()
                    .flat_map(|d| d.nets.iter().map(move |n| (d, n)))
                    .filter(|(_, n)| n.contains(a))
                    .max_by_key(|(_, n)| n.prefix_len())
                    .map(|(d, _)| d);
                (owner.and_then(|d| d.mac).unwrap_or(ANY_MAC), *a)
            }
        }
    }
}

/// The device's host address of `dst`'s family, else an address of its
/// prefix, else the unspecified one.
fn own_address(d: &CompiledDevice, dst: IpAddr) -> IpAddr {
    let same = |a: &IpAddr| a.is_ipv4() == dst.is_ipv4();
    d.nets
        .iter()
        .filter(|n| same(&n.addr()))
        .max_by_key(|n| n.prefix_len())
        .map(|n| n.addr())
        .unwrap_or_else(|| unspecified(dst))
}

fn unspecified(dst: IpAddr) -> IpAddr {
    if dst.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    }
}

/// Where to: an address or a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Addr(IpAddr),
    Name(String),
}

/// `ADDR|NAME[:PORT][/PROTO]` (IPv6 with a port in brackets:
/// `[2001:db8::1]:443`): the destination, protocol and port (an ICMP
/// type for ICMP: the echo request when none is given). The protocol is
/// tcp when only a port is given; tcp and udp need a port.
pub fn parse_destination(text: &str) -> Result<(Destination, u8, u16), String> {
    let (rest, proto) = match text.rsplit_once('/') {
        // An IPv6 address or CIDR has no '/' we accept: a protocol follows.
        Some((r, p)) => (r, Some(p)),
        None => (text, None),
    };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (a, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: `[` without `]`"))?;
        let port = after.strip_prefix(':').map(str::to_string);
        (a.to_string(), port)
    } else if rest.parse::<Ipv6Addr>().is_ok() {
        (rest.to_string(), None)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (rest.to_string(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port (0 to 65535)"))
        })
        .transpose()?;
    let proto = match proto.map(str::to_ascii_lowercase).as_deref() {
        None | Some("tcp") => PROTO_TCP,
        Some("udp") => PROTO_UDP,
        Some("icmp") => PROTO_ICMP,
        Some("icmpv6") => PROTO_ICMPV6,
        Some(n) => n
            .parse::<u8>()
            .map_err(|_| format!("unknown protocol `{n}` (tcp, udp, icmp, icmpv6 or a number)"))?,
    };
    let dest = match host.parse::<IpAddr>() {
        Ok(a) => Destination::Addr(a),
        Err(_) if host.contains('.') && !host.contains(char::is_whitespace) => {
            Destination::Name(host.clone())
        }
        Err(_) => return Err(format!("`{host}` is neither an address nor a domain name")),
    };
    let port = match (proto, port) {
        (PROTO_TCP | PROTO_UDP, Some(p)) => p,
        (PROTO_TCP | PROTO_UDP, None) => {
            return Err(format!(
                "`{text}`: which port? e.g. {host}:443/tcp (or /icmp, /udp with a port)"
            ))
        }
        (PROTO_ICMP, p) => p.unwrap_or(8),
        (PROTO_ICMPV6, p) => p.unwrap_or(128),
        (_, _) => 0,
    };
    Ok((dest, proto, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_with_their_defaults() {
        let a = |s: &str| Destination::Addr(s.parse().unwrap());
        assert_eq!(
            parse_destination("198.51.100.7:443").unwrap(),
            (a("198.51.100.7"), 6, 443)
        );
        assert_eq!(
            parse_destination("198.51.100.7:123/udp").unwrap(),
            (a("198.51.100.7"), 17, 123)
        );
        assert_eq!(
            parse_destination("[2001:db8:ff::7]:443/tcp").unwrap(),
            (a("2001:db8:ff::7"), 6, 443)
        );
        assert_eq!(
            parse_destination("2001:db8:ff::7/icmpv6").unwrap(),
            (a("2001:db8:ff::7"), 58, 128)
        );
        assert_eq!(
            parse_destination("203.0.113.9/47").unwrap(),
            (a("203.0.113.9"), 47, 0)
        );
        assert_eq!(
            parse_destination("203.0.113.9:0/icmp").unwrap(),
            (a("203.0.113.9"), 1, 0)
        );
        assert_eq!(
            parse_destination("api.vendor.example:8883").unwrap(),
            (Destination::Name("api.vendor.example".into()), 6, 8883)
        );
        assert!(parse_destination("198.51.100.7")
            .unwrap_err()
            .contains("which port?"));
        assert!(parse_destination("198.51.100.7:99999").is_err());
        assert!(parse_destination("x:443/gre")
            .unwrap_err()
            .contains("unknown protocol"));
    }
}
