//! Which name each device last resolved to each address, learned or not:
//! violation events cite it ("tried 198.51.100.7:443, which it got from
//! evil.example"). Only solicited answers are recorded, so a forged answer
//! cannot pin a misleading name on a destination.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
};

/// Bound on remembered (device, address) pairs; the oldest go first.
pub const CAPACITY: usize = 65_536;

#[derive(Default)]
pub struct Names {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    name: HashMap<(u32, IpAddr), (String, u64)>,
    /// Insertion order with the sequence number each entry had then; stale
    /// tokens (the entry was refreshed since) are skipped on eviction.
    order: VecDeque<((u32, IpAddr), u64)>,
    seq: u64,
}

impl Names {
    pub fn record(&self, device: u32, addr: IpAddr, name: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.seq += 1;
        let seq = g.seq;
        g.name.insert((device, addr), (name.to_string(), seq));
        g.order.push_back(((device, addr), seq));
        while g.name.len() > CAPACITY || g.order.len() > 2 * CAPACITY {
            let Some((k, s)) = g.order.pop_front() else {
                break;
            };
            if g.name.get(&k).is_some_and(|(_, cur)| *cur == s) {
                g.name.remove(&k);
            }
        }
    }

    /// The name `device` last resolved to `addr`, if any.
    pub fn of(&self, device: u32, addr: IpAddr) -> Option<String> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.name.get(&(device, addr)).map(|(n, _)| n.clone())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.name.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_name_wins_and_capacity_holds() {
        let n = Names::default();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        n.record(1, a, "cdn.example");
        n.record(1, a, "evil.example");
        assert_eq!(n.of(1, a).as_deref(), Some("evil.example"));
        assert_eq!(n.of(2, a), None);
        for i in 0..(CAPACITY as u32 + 10) {
            n.record(i + 10, a, "x.example");
        }
        assert_eq!(n.len(), CAPACITY);
        // The first device's entry was the oldest: evicted.
        assert_eq!(n.of(1, a), None);
        assert!(n.of(CAPACITY as u32 + 19, a).is_some());
    }
}
