//! One learning session's table: every DNS answer the device got and every
//! flow it opened, aggregated by (address, protocol, port), bounded.
//!
//! Fed from every event of the device (the kernel reports each flow's first
//! packet of a learning device past the event rate limit, see
//! `DEVICE_LEARNING`) and from every solicited DNS answer to it, so the
//! rate limit cannot hide a destination; only the caps below can, and the
//! draft says when they did.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
};

use super::report::{DestSeen, NameSeen, Report};

/// Distinct names one session records (about 200 B each).
pub const MAX_NAMES: usize = 1024;
/// Distinct (address, protocol, port) one session records (about 150 B
/// each): with `MAX_NAMES`, a session holds under 1 MiB.
pub const MAX_DESTINATIONS: usize = 4096;
/// Addresses kept per name (as `dns.max_addresses_per_name` by default).
pub const MAX_ADDRESSES_PER_NAME: usize = 64;

#[derive(Default)]
pub struct Observations {
    names: BTreeMap<String, Name>,
    /// Which names gave each address (for attributing flows).
    by_addr: HashMap<IpAddr, BTreeSet<String>>,
    dests: HashMap<(IpAddr, u8, u16), Dest>,
    names_over_cap: u64,
    dests_over_cap: u64,
}

struct Name {
    addrs: BTreeSet<IpAddr>,
    answers: u64,
    first_ns: u64,
    last_ns: u64,
}

struct Dest {
    flows: u64,
    first_ns: u64,
    last_ns: u64,
    names: BTreeSet<String>,
}

impl Observations {
    /// A solicited DNS answer gave the device `addr` for `name`.
    pub fn answer(&mut self, name: &str, addr: IpAddr, now_ns: u64) {
        let name = crate::policy::pattern::normalize(name);
        if !self.names.contains_key(&name) && self.names.len() >= MAX_NAMES {
            self.names_over_cap += 1;
            return;
        }
        let n = self.names.entry(name.clone()).or_insert(Name {
            addrs: BTreeSet::new(),
            answers: 0,
            first_ns: now_ns,
            last_ns: now_ns,
        });
        n.answers += 1;
        n.last_ns = now_ns;
        if n.addrs.len() < MAX_ADDRESSES_PER_NAME || n.addrs.contains(&addr) {
            n.addrs.insert(addr);
            self.by_addr.entry(addr).or_default().insert(name);
        }
    }

    /// The device opened a flow to `addr` (`port` 0 without ports);
    /// `domain`: the name the daemon's name table has for it (an answer
    /// from before the session).
    pub fn flow(&mut self, addr: IpAddr, proto: u8, port: u16, domain: Option<&str>, now_ns: u64) {
        let key = (addr, proto, port);
        if !self.dests.contains_key(&key) && self.dests.len() >= MAX_DESTINATIONS {
            self.dests_over_cap += 1;
            return;
        }
        let d = self.dests.entry(key).or_insert(Dest {
            flows: 0,
            first_ns: now_ns,
            last_ns: now_ns,
            names: BTreeSet::new(),
        });
        d.flows += 1;
        d.last_ns = now_ns;
        if let Some(names) = self.by_addr.get(&addr) {
            d.names.extend(names.iter().cloned());
        }
        if let Some(n) = domain {
            d.names.insert(crate::policy::pattern::normalize(n));
        }
    }

    /// The sorted report; `wall` turns a monotonic stamp into RFC 3339.
    pub fn report(&self, wall: impl Fn(u64) -> String) -> Report {
        let names = self
            .names
            .iter()
            .map(|(name, n)| NameSeen {
                name: name.clone(),
                addresses: n.addrs.iter().copied().collect(),
                answers: n.answers,
                first: wall(n.first_ns),
                last: wall(n.last_ns),
            })
            .collect();
        let mut destinations: Vec<DestSeen> = self
            .dests
            .iter()
            .map(|(&(addr, proto, port), d)| DestSeen {
                addr,
                proto,
                port,
                flows: d.flows,
                first: wall(d.first_ns),
                last: wall(d.last_ns),
                names: d.names.iter().cloned().collect(),
            })
            .collect();
        destinations.sort_by_key(|d| (d.addr, d.proto, d.port));
        Report {
            names,
            destinations,
            names_over_cap: self.names_over_cap,
            destinations_over_cap: self.dests_over_cap,
            ..Report::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn flows_are_attributed_to_the_names_that_gave_their_address() {
        let mut o = Observations::default();
        o.answer("A.Example.COM.", a("198.51.100.7"), 1);
        o.answer("b.example.com", a("198.51.100.7"), 2);
        o.flow(a("198.51.100.7"), 6, 443, None, 3);
        o.flow(a("198.51.100.7"), 6, 443, None, 9);
        o.flow(a("203.0.113.9"), 17, 123, Some("ntp.example.org."), 4);
        o.flow(a("203.0.113.10"), 6, 8883, None, 5);
        let r = o.report(|ns| ns.to_string());
        assert_eq!(r.names.len(), 2);
        assert_eq!(r.names[0].name, "a.example.com");
        let d = &r.destinations;
        assert_eq!(d.len(), 3);
        let web = d.iter().find(|d| d.port == 443).unwrap();
        assert_eq!(
            (web.flows, web.first.as_str(), web.last.as_str()),
            (2, "3", "9")
        );
        assert_eq!(web.names, ["a.example.com", "b.example.com"]);
        assert_eq!(
            d.iter().find(|d| d.port == 123).unwrap().names,
            ["ntp.example.org"]
        );
        assert!(d.iter().find(|d| d.port == 8883).unwrap().names.is_empty());
    }

    #[test]
    fn caps_hold_and_are_counted() {
        let mut o = Observations::default();
        for i in 0..(MAX_DESTINATIONS as u32 + 5) {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0xc633_6400 + i));
            o.flow(addr, 6, 443, None, 1);
        }
        for i in 0..(MAX_NAMES + 3) {
            o.answer(&format!("n{i}.example.com"), a("198.51.100.1"), 1);
        }
        for i in 0..(MAX_ADDRESSES_PER_NAME as u32 + 2) {
            o.answer(
                "n0.example.com",
                IpAddr::from(std::net::Ipv4Addr::from(i)),
                1,
            );
        }
        let r = o.report(|ns| ns.to_string());
        assert_eq!(r.destinations.len(), MAX_DESTINATIONS);
        assert_eq!(r.destinations_over_cap, 5);
        assert_eq!(r.names.len(), MAX_NAMES);
        assert_eq!(r.names_over_cap, 3);
        assert_eq!(r.names[0].addresses.len(), MAX_ADDRESSES_PER_NAME);
        // A known destination still counts at the cap.
        let first = r.destinations[0].addr;
        o.flow(first, 6, 443, None, 2);
        assert_eq!(o.report(|n| n.to_string()).destinations[0].flows, 2);
    }
}
