//! A bounded fuzz run over the answer-learning path (frame parsing, message
//! decoding, trust checks, crediting), in CI: random mutations of valid
//! answers must never panic, and whatever is learned must be credited to the
//! question the device asked and to a pattern of its profile.
//! `IOTFENCE_FUZZ_ITERATIONS` and `IOTFENCE_FUZZ_SECONDS` raise the bounds.

mod support;

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use iotfence::dns::{
    frame,
    learn::examine,
    table::{Credit, Limits, Table},
};
use support::*;

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let ok = |recs| answer(7, "a.vendor.example", recs, ResponseCode::NoError);
    vec![
        ok(vec![a("a.vendor.example", "198.51.100.7", 60)]),
        ok(vec![
            cname("a.vendor.example", "edge.cdn.example"),
            a("edge.cdn.example", "198.51.100.8", 60),
            a("edge.cdn.example", "2001:db8:ff::8", 60),
            a("evil.example", "203.0.113.1", 60),
        ]),
        ok((0..40)
            .map(|i| a("a.vendor.example", &format!("203.0.113.{i}"), 1))
            .collect()),
    ]
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = b.len().max(1);
        match rng.below(6) {
            0 => {
                let i = rng.below(len);
                if i < b.len() {
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len);
                if i < b.len() {
                    b[i] = [0, 0xff, 0xc0, 0x3f, 12][rng.below(5)];
                }
            }
            2 => b.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len);
                b.insert(i.min(b.len()), rng.next() as u8);
            }
            4 => {
                // A compression pointer to a random offset.
                let i = rng.below(len);
                if i + 1 < b.len() {
                    b[i] = 0xc0 | (rng.below(4) as u8);
                    b[i + 1] = rng.next() as u8;
                }
            }
            _ => {
                let a = rng.below(len);
                let n = rng.below(16);
                let chunk: Vec<u8> = b.iter().skip(a).take(n).copied().collect();
                let at = rng.below(len).min(b.len());
                b.splice(at..at, chunk);
            }
        }
    }
    b
}

#[test]
fn mutated_answers_never_panic_or_widen_access() {
    let iterations: u64 = std::env::var("IOTFENCE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let budget = Duration::from_secs(
        std::env::var("IOTFENCE_FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    let rules = rules();
    let limits = Limits {
        max_addresses_per_name: 16,
        max_entries_per_device: 64,
        max_entries: 128,
    };
    let seeds = seeds();
    let mut rng = Rng(0x1077_fe4c_e5ee_d001);
    let mut table = Table::default();
    let start = Instant::now();
    let (mut n, mut learned) = (0u64, 0u64);
    while n < iterations && start.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len())];
        let msg = mutate(&mut rng, seed);
        let mut pending = pending_for(7, "a.vendor.example");
        if let Ok(lesson) = examine(&msg, route(), &rules, &mut pending, 1) {
            assert_eq!(
                lesson.name, "a.vendor.example",
                "credited to another name: {msg:?}"
            );
            assert!(
                !lesson.patterns.is_empty()
                    && lesson.patterns.iter().all(|(p, _)| p.matches(&lesson.name))
            );
            for (addr, _) in &lesson.addrs {
                for (pattern, r) in &lesson.patterns {
                    let c = Credit {
                        name: lesson.name.clone(),
                        pattern: pattern.clone(),
                        rules: r.clone(),
                        expires_ns: 100,
                    };
                    let _ = table.credit(&limits, 1, *addr, c);
                }
            }
            learned += 1;
        }
        // The same bytes as a frame payload must not upset the frame parser.
        if let Some(f) = frame::parse(&msg) {
            let _ = frame::messages(f.proto, &msg[f.payload.clone()]);
            let mut copy = msg.clone();
            frame::finalize_checksum(&mut copy, &f);
        }
        n += 1;
    }
    assert!(table.len() <= limits.max_entries);
    eprintln!(
        "{n} mutated answers in {:?}, {learned} still learnable",
        start.elapsed()
    );
    assert!(n >= 10_000, "the fuzz run was starved: {n} iterations");
}
