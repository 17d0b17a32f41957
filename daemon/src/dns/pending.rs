//! Queries devices sent and are still waiting for: an answer is learned from
//! only when it matches one (client address and port, resolver, transaction
//! id, question name). Bounded per sender and in total, so nobody can crowd
//! out the others by spraying queries that are never answered (each holds
//! its slot for the query lifetime). A sender is the device the kernel
//! identified *and* the MAC that sent the query: a host using a device's
//! address spends its own budget, not the device's, and every unknown
//! device its own. Unknown devices together get a pool of their own, so a
//! stranger rotating MACs cannot fill the slots known devices need.

use std::{collections::HashMap, net::IpAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub client: IpAddr,
    pub port: u16,
    pub resolver: IpAddr,
    pub id: u16,
}

/// Who a waiting query is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Querier {
    /// The device id the kernel identified (0: unknown).
    pub device: u32,
    pub mac: [u8; 6],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// Normalized question name.
    pub name: String,
    pub device: u32,
    pub deadline_ns: u64,
    mac: [u8; 6],
}

pub struct Pending {
    queries: HashMap<QueryKey, Waiting>,
    per_sender: HashMap<Querier, usize>,
    /// Waiting queries of unknown devices (device 0), all MACs together.
    unknown: usize,
    max_total: usize,
    max_per_device: usize,
    lifetime_ns: u64,
}

impl Pending {
    pub fn new(max_total: usize, max_per_device: usize, lifetime_ns: u64) -> Self {
        Self {
            queries: HashMap::new(),
            per_sender: HashMap::new(),
            unknown: 0,
            max_total,
            max_per_device,
            lifetime_ns,
        }
    }

    /// Unknown devices may hold at most this share of all slots.
    fn max_unknown(&self) -> usize {
        self.max_total / 4
    }

    /// Records a query of `device` from an unnamed MAC (tests, tools).
    pub fn record(&mut self, key: QueryKey, name: String, device: u32, now_ns: u64) -> bool {
        self.record_from(
            key,
            name,
            Querier {
                device,
                mac: [0; 6],
            },
            now_ns,
        )
    }

    /// Records a query; false when a cap refuses it (its answer will then
    /// not be learned from, and is counted as unsolicited).
    pub fn record_from(&mut self, key: QueryKey, name: String, from: Querier, now_ns: u64) -> bool {
        let deadline_ns = now_ns.saturating_add(self.lifetime_ns);
        if let Some(w) = self.queries.get_mut(&key) {
            // A retransmission (same key, possibly a new name) by the same
            // sender; another sender must not take over its question.
            if w.device != from.device || w.mac != from.mac {
                return false;
            }
            w.name = name;
            w.deadline_ns = deadline_ns;
            return true;
        }
        let unknown = from.device == 0;
        if self.queries.len() >= self.max_total || (unknown && self.unknown >= self.max_unknown()) {
            return false;
        }
        let n = self.per_sender.entry(from).or_default();
        if *n >= self.max_per_device {
            return false;
        }
        *n += 1;
        if unknown {
            self.unknown += 1;
        }
        self.queries.insert(
            key,
            Waiting {
                name,
                device: from.device,
                deadline_ns,
                mac: from.mac,
            },
        );
        true
    }

    /// Takes the query an answer responds to (one answer per query).
    pub fn take(&mut self, key: &QueryKey, now_ns: u64) -> Option<Waiting> {
        let w = self.queries.remove(key)?;
        self.release(&w);
        (w.deadline_ns >= now_ns).then_some(w)
    }

    pub fn expire(&mut self, now_ns: u64) {
        let mut gone = Vec::new();
        self.queries.retain(|_, w| {
            let keep = w.deadline_ns >= now_ns;
            if !keep {
                gone.push(w.clone());
            }
            keep
        });
        for w in &gone {
            self.release(w);
        }
    }

    fn release(&mut self, w: &Waiting) {
        let from = Querier {
            device: w.device,
            mac: w.mac,
        };
        if let Some(n) = self.per_sender.get_mut(&from) {
            *n -= 1;
            if *n == 0 {
                self.per_sender.remove(&from);
            }
        }
        if w.device == 0 {
            self.unknown -= 1;
        }
    }

    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Every waiting query, with who it is charged to.
    pub fn waiting(&self) -> impl Iterator<Item = (&QueryKey, &Waiting, Querier)> {
        self.queries.iter().map(|(k, w)| {
            let from = Querier {
                device: w.device,
                mac: w.mac,
            };
            (k, w, from)
        })
    }

    /// How long a query waits for its answer.
    pub fn lifetime_ns(&self) -> u64 {
        self.lifetime_ns
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> QueryKey {
        QueryKey {
            client: "192.0.2.10".parse().unwrap(),
            port,
            resolver: "192.0.2.1".parse().unwrap(),
            id: 7,
        }
    }

    #[test]
    fn caps_per_device_and_expires() {
        let mut p = Pending::new(100, 2, 1_000);
        assert!(p.record(key(1), "a.example.com".into(), 1, 0));
        assert!(p.record(key(2), "a.example.com".into(), 1, 0));
        assert!(!p.record(key(3), "a.example.com".into(), 1, 0));
        assert!(
            p.record(key(4), "a.example.com".into(), 2, 0),
            "other devices unaffected"
        );
        assert!(p.take(&key(1), 10).is_some());
        assert!(p.take(&key(1), 10).is_none(), "one answer per query");
        assert!(p.take(&key(2), 5_000).is_none(), "expired");
        p.expire(5_000);
        assert!(p.is_empty());
        assert!(p.record(key(3), "a.example.com".into(), 1, 5_000));
    }

    fn from(device: u32, last: u8) -> Querier {
        Querier {
            device,
            mac: [2, 0, 0, 0, 0, last],
        }
    }

    #[test]
    fn a_host_using_a_devices_address_spends_its_own_budget() {
        let mut p = Pending::new(100, 2, 1_000);
        let name = || "a.example.com".to_string();
        assert!(p.record_from(key(1), name(), from(1, 9), 0));
        assert!(p.record_from(key(2), name(), from(1, 9), 0));
        assert!(!p.record_from(key(3), name(), from(1, 9), 0), "spent");
        assert!(
            p.record_from(key(4), name(), from(1, 1), 0),
            "the device's own"
        );
        assert!(
            !p.record_from(key(4), name(), from(1, 9), 0),
            "nor can it take over the device's question"
        );
        assert_eq!(p.take(&key(4), 1).map(|w| w.device), Some(1));
    }

    #[test]
    fn unknown_devices_share_a_pool_known_ones_never_need() {
        let mut p = Pending::new(8, 100, 1_000);
        let name = || "a.example.com".to_string();
        // A stranger rotating MACs: each MAC has its own budget, but all
        // unknown devices together stop at a quarter of the slots.
        for i in 0..8u16 {
            let ok = p.record_from(key(i), name(), from(0, i as u8), 0);
            assert_eq!(ok, i < 2, "unknown query {i}");
        }
        for i in 10..16u16 {
            assert!(p.record_from(key(i), name(), from(1, 1), 0), "known {i}");
        }
        p.expire(2_000);
        assert!(p.is_empty());
        assert!(p.record_from(key(0), name(), from(0, 0), 2_000));
    }
}
