//! Names devices asked for that their profile does not allow (the answer's
//! refusal `not_allowed`): the earliest sign of a new dependency after a
//! firmware update, or of a compromise, before any packet is dropped. Kept
//! per device for `/status` (the most recent names, bounded) and reported
//! as events, rate-limited per device like violation events (GCRA with the
//! `events:` rate and burst), the suppressed ones counted in the next.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Mutex,
};

/// Distinct names remembered per device; the least recently asked go.
pub const NAMES_PER_DEVICE: usize = 32;
/// Devices remembered (unknown devices share id 0).
const DEVICES: usize = 4096;

/// One name a device was refused, as `/status` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub name: String,
    pub count: u64,
    /// CLOCK_MONOTONIC ns of the first and the latest answer refused.
    pub first_ns: u64,
    pub last_ns: u64,
}

/// A refusal to report as an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedEvent {
    pub device: u32,
    pub name: String,
    /// The device's MAC (the answer's destination).
    pub mac: Option<[u8; 6]>,
    pub monotonic_ns: u64,
    /// This device's refusals not reported since its last event.
    pub suppressed: u32,
}

#[derive(Default)]
struct Device {
    names: VecDeque<Seen>,
    /// GCRA theoretical arrival time, and what it held back since.
    tat_ns: u64,
    suppressed: u32,
}

pub struct Refused {
    inner: Mutex<BTreeMap<u32, Device>>,
    interval_ns: u64,
    burst_ns: u64,
}

impl Refused {
    /// Events at `interval_ns` spacing on average, `burst` at once.
    pub fn new(interval_ns: u64, burst: u32) -> Self {
        Self {
            inner: Mutex::new(BTreeMap::new()),
            interval_ns,
            burst_ns: interval_ns * u64::from(burst.saturating_sub(1)),
        }
    }

    /// Records that `device` was refused `name`; returns the event to
    /// report, unless the device's event budget is spent.
    pub fn record(
        &self,
        device: u32,
        name: &str,
        mac: Option<[u8; 6]>,
        now_ns: u64,
    ) -> Option<RefusedEvent> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !g.contains_key(&device) && g.len() >= DEVICES {
            // The device asked least recently goes.
            let oldest = g
                .iter()
                .min_by_key(|(_, d)| d.names.back().map_or(0, |s| s.last_ns))
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                g.remove(&k);
            }
        }
        let d = g.entry(device).or_default();
        match d.names.iter().position(|s| s.name == name) {
            Some(i) => {
                let mut s = d.names.remove(i).expect("found");
                s.count += 1;
                s.last_ns = now_ns;
                d.names.push_back(s);
            }
            None => {
                if d.names.len() == NAMES_PER_DEVICE {
                    d.names.pop_front();
                }
                d.names.push_back(Seen {
                    name: name.to_string(),
                    count: 1,
                    first_ns: now_ns,
                    last_ns: now_ns,
                });
            }
        }
        let tat = d.tat_ns.max(now_ns);
        if tat - now_ns > self.burst_ns {
            d.suppressed = d.suppressed.saturating_add(1);
            return None;
        }
        d.tat_ns = tat + self.interval_ns;
        let suppressed = std::mem::take(&mut d.suppressed);
        Some(RefusedEvent {
            device,
            name: name.to_string(),
            mac,
            monotonic_ns: now_ns,
            suppressed,
        })
    }

    /// The names `device` was refused, most recent first.
    pub fn of(&self, device: u32) -> Vec<Seen> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&device)
            .map(|d| d.names.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

impl Default for Refused {
    /// The defaults of `events:` (5 a second, bursts of 20).
    fn default() -> Self {
        Self::new(200_000_000, 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn events_are_rate_limited_per_device_and_names_kept() {
        // One a second, bursts of 3.
        let r = Refused::new(S, 3);
        let sent: Vec<_> = (0..10)
            .filter_map(|i| r.record(1, "evil.example.", None, 100 * S + i))
            .collect();
        assert_eq!(sent.len(), 3, "the burst, then nothing");
        // Another device has its own budget.
        assert!(r.record(2, "evil.example.", None, 100 * S).is_some());
        // Later, the next event says what was held back.
        let next = r.record(1, "other.example.", None, 110 * S).unwrap();
        assert_eq!(next.suppressed, 7);
        let seen = r.of(1);
        assert_eq!(seen[0].name, "other.example.");
        assert_eq!(
            (seen[1].name.as_str(), seen[1].count),
            ("evil.example.", 10)
        );
        assert!(r.of(3).is_empty());
    }

    #[test]
    fn each_device_keeps_its_most_recent_names() {
        let r = Refused::new(S, 1000);
        for i in 0..(NAMES_PER_DEVICE + 5) {
            r.record(1, &format!("n{i}.example."), None, i as u64);
        }
        let seen = r.of(1);
        assert_eq!(seen.len(), NAMES_PER_DEVICE);
        assert_eq!(seen[0].name, format!("n{}.example.", NAMES_PER_DEVICE + 4));
        assert!(seen.iter().all(|s| s.name != "n0.example."));
    }
}
