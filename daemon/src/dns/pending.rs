//! Queries devices sent and are still waiting for: an answer is learned from
//! only when it matches one (client address and port, resolver, transaction
//! id, question name). Bounded per device and in total, so a device cannot
//! crowd out the others by spraying queries.

use std::{collections::HashMap, net::IpAddr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub client: IpAddr,
    pub port: u16,
    pub resolver: IpAddr,
    pub id: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// Normalized question name.
    pub name: String,
    pub device: u32,
    pub deadline_ns: u64,
}

pub struct Pending {
    queries: HashMap<QueryKey, Waiting>,
    per_device: HashMap<u32, usize>,
    max_total: usize,
    max_per_device: usize,
    lifetime_ns: u64,
}

impl Pending {
    pub fn new(max_total: usize, max_per_device: usize, lifetime_ns: u64) -> Self {
        Self {
            queries: HashMap::new(),
            per_device: HashMap::new(),
            max_total,
            max_per_device,
            lifetime_ns,
        }
    }

    /// Records a query; false when a cap refuses it (its answer will then
    /// not be learned from, and is counted as unsolicited).
    pub fn record(&mut self, key: QueryKey, name: String, device: u32, now_ns: u64) -> bool {
        let deadline_ns = now_ns.saturating_add(self.lifetime_ns);
        if let Some(w) = self.queries.get_mut(&key) {
            // A retransmission: same key, possibly a new name.
            w.name = name;
            w.deadline_ns = deadline_ns;
            return true;
        }
        let n = self.per_device.entry(device).or_default();
        if *n >= self.max_per_device || self.queries.len() >= self.max_total {
            return false;
        }
        *n += 1;
        self.queries.insert(
            key,
            Waiting {
                name,
                device,
                deadline_ns,
            },
        );
        true
    }

    /// Takes the query an answer responds to (one answer per query).
    pub fn take(&mut self, key: &QueryKey, now_ns: u64) -> Option<Waiting> {
        let w = self.queries.remove(key)?;
        self.release(w.device);
        (w.deadline_ns >= now_ns).then_some(w)
    }

    pub fn expire(&mut self, now_ns: u64) {
        let mut gone = Vec::new();
        self.queries.retain(|_, w| {
            let keep = w.deadline_ns >= now_ns;
            if !keep {
                gone.push(w.device);
            }
            keep
        });
        for d in gone {
            self.release(d);
        }
    }

    fn release(&mut self, device: u32) {
        if let Some(n) = self.per_device.get_mut(&device) {
            *n -= 1;
            if *n == 0 {
                self.per_device.remove(&device);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queries.len()
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
}
