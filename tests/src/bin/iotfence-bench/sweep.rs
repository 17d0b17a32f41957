//! Part 1, sweeps: the datapath cost as the policy and the learned table
//! grow. The fixture policy gets filler devices (10, 1,000 or 10,000 in
//! all, the datapath sized for them with `max_devices`) and the learned map
//! filler entries (1,000 / 100,000 / 1,000,000) spread over every device;
//! then the fixture table is replayed as in part 1 and a few paths are
//! timed:
//! - steady paths (a live flow, a drop) with repeated runs of one packet;
//! - a connection's first packet (learned or static allow, which inserts a
//!   flow) with single runs, each with a new source port, so every run
//!   misses the flow table as a real new connection does.
//!
//! Test runs see warm caches: the sweep shows what the table sizes cost the
//! algorithms (hash chains, trie depth), not cache misses; part 2 measures
//! live traffic.
//!
//! It also reads the kernel memory per learned entry: the learned map's
//! `memlock` in its fdinfo (the kernel's own accounting, real usage from
//! 6.5) at the target and the largest configurations. The maps are sized
//! to powers of two, as an admin would size them: the kernel rounds the
//! bucket array up to one anyway. The cost of one more entry is the
//! difference of the two over the difference of their capacities; what
//! is left is the map's fixed part.

use std::{
    net::Ipv6Addr,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    time::Instant,
};

use anyhow::Context;
use aya::maps::IterableMap;
use iotfence::{dns::table::key, kernel::batch};
use iotfence_common::{
    consts::{MAX_DEVICES, PROTO_TCP},
    values::LearnedRules,
    LearnedKey, Mac, PortRule,
};
use iotfence_tests::{
    fixtures, floor,
    harness::{monotonic_ns, Harness, Hook},
    packet::with_sport,
};
use serde_json::json;

use crate::{datapath::replay, guard, median, save, Opts};

/// (fixture, how it is timed).
const TIMED: [(&str, Mode); 8] = [
    ("same flow, next segment", Mode::Steady),
    ("same flow, next segment", Mode::Single),
    ("tcp 443 to allowed /24", Mode::NewConnection),
    ("ipv6 tcp 443 allowed", Mode::NewConnection),
    ("learned address, learned port", Mode::NewConnection),
    ("tcp 22 to allowed /24", Mode::Steady),
    ("learned address, other port", Mode::Steady),
    ("unknown device: web", Mode::Steady),
];

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `repeat` in-kernel runs of the same packet.
    Steady,
    /// Single runs, each with a new source port (a new flow each time).
    NewConnection,
    /// Single runs of the same packet: what a single run costs beyond a
    /// repeated one (cold caches after the syscall, the timer), to set
    /// against `NewConnection`.
    Single,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Steady => "steady",
            Mode::NewConnection => "new connection",
            Mode::Single => "single run",
        }
    }
}

struct Row {
    devices: usize,
    learned: usize,
    name: &'static str,
    mode: Mode,
    ns: u64,
    floor_ns: u64,
}

/// The fixture policy with filler devices up to `devices` in all.
fn policy(devices: usize) -> String {
    let mut y = fixtures::POLICY.to_string();
    let own = y.matches("\n  - name: ").count();
    for i in 0..devices.saturating_sub(own) {
        let mac = [0x02, 0, 0, 1, (i >> 8) as u8, i as u8];
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, i as u16);
        y += &format!(
            "  - name: fill-{i}\n    mac: {}\n    ip: {ip}\n    profile: camera\n",
            Mac(mac)
        );
    }
    y
}

/// `n` learned entries (TCP 443, an hour to live) spread over every
/// device, to addresses in 2001:db8:ff::/64 (the fixtures learn IPv4 ones).
/// Written in batches (BPF_MAP_UPDATE_BATCH): a million single updates
/// would take most of the sweep's time.
fn fill_learned(h: &mut Harness, n: usize) -> anyhow::Result<()> {
    let ids: Vec<u32> = h.policy.devices.iter().map(|d| d.id).collect();
    let v = LearnedRules::one(
        PortRule::new(PROTO_TCP, 443, 443),
        monotonic_ns() + 3_600_000_000_000,
    );
    let keys: Vec<LearnedKey> = (0..n)
        .map(|i| {
            let slot = (i / ids.len()) as u64 + 1;
            let addr = Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xff,
                0,
                0,
                0,
                (slot >> 16) as u16,
                slot as u16,
            );
            key(ids[i % ids.len()], addr.into())
        })
        .collect();
    let values = vec![v; BATCH];
    let dns = h.dp.dns.as_ref().expect("DNS maps");
    for chunk in keys.chunks(BATCH) {
        batch::update(dns.learned.map(), chunk, &values[..chunk.len()])
            .context("filling the learned map")?;
    }
    dns.grants.bump()
}

/// Entries per BPF_MAP_UPDATE_BATCH.
const BATCH: usize = 16_384;

/// The learned map's kernel memory and capacity: `memlock` of its fdinfo,
/// max_entries.
fn learned_memory(h: &Harness) -> anyhow::Result<(u64, u64)> {
    let map = h.dp.dns.as_ref().expect("DNS maps").learned.map();
    let fd = map.fd().as_fd().as_raw_fd();
    let path = format!("/proc/self/fdinfo/{fd}");
    let info = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok((field("memlock:")?, field("max_entries:")?))
}

/// Runs one configuration; appends its rows. Returns the learned map's
/// (memlock, max_entries).
fn configuration(
    o: &Opts,
    devices: usize,
    learned: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<(u64, u64)> {
    // Id 0 is unknown devices; the default capacity when it is enough.
    let max_devices = (devices as u32 + 1).max(MAX_DEVICES);
    let extra = format!(
        "{}max_devices: {max_devices}\ndns:\n  max_entries: {}\n",
        fixtures::CONFIG_BENCH,
        (learned.max(1024) + 1024).next_power_of_two()
    );
    let mut h = Harness::new(&policy(devices), &extra);
    fill_learned(&mut h, learned)?;
    let memory = learned_memory(&h)?;
    let empty = floor::empty_xdp()?;
    replay(&mut h, |h, name, packet, _| {
        for &(_, mode) in TIMED.iter().filter(|(n, _)| *n == name) {
            let (ns, floor_ns) = time(o, h, &empty, packet, mode)?;
            rows.push(Row {
                devices,
                learned,
                name,
                mode,
                ns,
                floor_ns,
            });
        }
        Ok(())
    })?;
    let found = rows
        .iter()
        .filter(|r| r.devices == devices && r.learned == learned)
        .count();
    anyhow::ensure!(
        found == TIMED.len(),
        "sweep: {found} of the {} timed fixtures are in the table",
        TIMED.len()
    );
    Ok(memory)
}

/// (iotfence ns, floor ns): medians of `packet` timed as `mode`.
fn time(
    o: &Opts,
    h: &Harness,
    empty: &OwnedFd,
    packet: &[u8],
    mode: Mode,
) -> anyhow::Result<(u64, u64)> {
    let (repeat, rounds, singles) = if o.short {
        (20_000, 5, 1_000)
    } else {
        (200_000, 9, 5_000)
    };
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    match mode {
        Mode::Steady => {
            for _ in 0..rounds {
                ours.push(h.time(Hook::Xdp, packet, repeat).1);
                base.push(floor::time(empty, packet, repeat)?.1);
            }
        }
        Mode::NewConnection => {
            for i in 0..singles {
                let p = with_sport(packet, 1024 + i as u16);
                ours.push(h.time(Hook::Xdp, &p, 1).1);
                base.push(floor::time(empty, &p, 1)?.1);
            }
        }
        Mode::Single => {
            for _ in 0..singles {
                ours.push(h.time(Hook::Xdp, packet, 1).1);
                base.push(floor::time(empty, packet, 1)?.1);
            }
        }
    }
    Ok((median(ours), median(base)))
}

/// The configurations compared: the small tables, the 1,000-device target
/// of the first release, and a large site (issue 19: at most 1.2x the
/// small tables' cost). The gate is on the largest.
const SMALL: (usize, usize) = (10, 1_000);
const TARGET: (usize, usize) = (1_000, 100_000);
const LARGE: (usize, usize) = (10_000, 1_000_000);

/// Part 1 sweeps. Short mode (CI) runs the small, target and large
/// configurations and fails when the large one costs more than its
/// threshold times the small one, or when a learned entry takes more
/// kernel memory than its threshold.
pub fn run(o: &Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    let configs: &[(usize, usize)] = if o.short {
        &[SMALL, TARGET, LARGE]
    } else {
        &[
            (10, 1_000),
            (10, 100_000),
            (10, 1_000_000),
            (1_000, 1_000),
            (1_000, 100_000),
            (1_000, 1_000_000),
            LARGE,
        ]
    };
    let mut rows = Vec::new();
    let (mut target_memory, mut memory) = ((0, 0), (0, 0));
    for &(devices, learned) in configs {
        let t = Instant::now();
        let m = configuration(o, devices, learned, &mut rows)?;
        if (devices, learned) == LARGE {
            memory = m;
        }
        if (devices, learned) == TARGET {
            target_memory = m;
        }
        eprintln!(
            "sweep: {devices} devices, {learned} learned entries: {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    let mut md = String::from(
        "# Datapath cost as tables grow (BPF_PROG_TEST_RUN, XDP)\n\n\
         ns per packet (median), and added over the empty program on the same \
         packet. Steady: repeated runs of one packet; new connection: single \
         runs, each with a new source port; single run: single runs of the \
         same packet (the cost of a run alone, cold after its syscall).\n\n\
         | devices | learned entries | fixture | timed as | iotfence ns | floor ns | added ns |\n\
         |---:|---:|---|---|---:|---:|---:|\n",
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.devices,
            r.learned,
            r.name,
            r.mode.name(),
            r.ns,
            r.floor_ns,
            r.ns as i64 - r.floor_ns as i64
        );
    }
    let cost = |(d, l): (usize, usize)| -> u64 {
        rows.iter()
            .filter(|r| r.devices == d && r.learned == l)
            .map(|r| r.ns)
            .sum()
    };
    let small = cost(SMALL).max(1) as f64;
    let target_scale = cost(TARGET) as f64 / small;
    let scale = cost(LARGE) as f64 / small;
    let (memlock, max_entries) = memory;
    let (target_memlock, target_entries) = target_memory;
    // The cost of one more entry, and the map's fixed part (its struct and
    // the spare elements the kernel keeps per CPU).
    let per_entry = memlock.saturating_sub(target_memlock) as f64
        / max_entries.saturating_sub(target_entries).max(1) as f64;
    let fixed = memlock as f64 - per_entry * max_entries as f64;
    let (key_bytes, value_bytes) = (
        std::mem::size_of::<LearnedKey>(),
        std::mem::size_of::<LearnedRules>(),
    );
    md += &format!(
        "\nCost over 10 devices and 1,000 entries (sum over the timed fixtures): \
         1,000 devices and 100,000 entries {target_scale:.2}x, 10,000 devices and \
         1,000,000 entries {scale:.2}x.\n\n\
         Kernel memory per learned entry: {per_entry:.1} B (memlock of the learned \
         map, /proc/self/fdinfo: {memlock} B at {max_entries} entries, {target_memlock} B \
         at {target_entries}; the difference over the difference of capacities), plus \
         {fixed:.0} B for the map itself; key {key_bytes} B, value {value_bytes} B. \
         Run took {:.1} s.\n",
        started.elapsed().as_secs_f64()
    );
    let doc = json!({
        "scale_ratio": scale,
        "scale_ratio_1000_devices": target_scale,
        "learned_memlock_bytes": memlock,
        "learned_max_entries": max_entries,
        "learned_bytes_per_entry": per_entry,
        "learned_fixed_bytes": fixed,
        "learned_target_memlock_bytes": target_memlock,
        "learned_target_max_entries": target_entries,
        "learned_key_bytes": key_bytes,
        "learned_value_bytes": value_bytes,
        "rows": rows.iter().map(|r| json!({
            "devices": r.devices, "learned": r.learned, "name": r.name,
            "timed_as": r.mode.name(),
            "ns": r.ns, "floor_ns": r.floor_ns,
        })).collect::<Vec<_>>(),
    });
    save(o, "sweep", &md, &doc)?;
    // Both gates are checked, and both failures told.
    let gates = [
        guard(
            o,
            "sweep_scale_ratio_max",
            scale,
            "sweep: cost at 10,000 devices and 1,000,000 entries over the small tables'",
        ),
        guard(
            o,
            "learned_bytes_per_entry_max",
            per_entry,
            &format!(
                "sweep: kernel memory per learned entry (the learned map's memlock \
                 between two capacities, bytes per entry; its key is {key_bytes} B and \
                 its value LearnedRules {value_bytes} B, plus the hash table's element \
                 header and bucket)"
            ),
        ),
    ];
    let failed: Vec<String> = gates
        .into_iter()
        .filter_map(|g| g.err().map(|e| e.to_string()))
        .collect();
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(())
}
