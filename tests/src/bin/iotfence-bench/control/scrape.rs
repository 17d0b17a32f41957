//! `/metrics` of the real daemon with 1,000 devices that all have sent
//! something: each device's allowed packet and three forbidden ones (three
//! violation ports) are run through the pinned XDP program with
//! BPF_PROG_TEST_RUN, so every device has counter and violation series, as
//! on a busy site. Then `/metrics` is fetched with plain HTTP/1.1 GETs from
//! inside the daemon's namespace, one connection each, timed from connect
//! to the last body byte.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use iotfence::{
    config,
    kernel::{counters::Counters, mapstat},
    metrics::{render, Shared},
    policy::compile,
};
use iotfence_common::{
    consts::{map_names, prog_names},
    reason::counter_index,
};
use iotfence_tests::{
    floor,
    lab::{Daemon, Netns},
    observe,
    packet::{self, v6, Packet, TCP_SYN},
    privileged::{PinDir, TempDir},
};

use super::policy::{device_ip, device_mac, many_devices};

const LISTEN: &str = "127.0.0.1:9742";

pub struct Scrapes {
    pub ms: Vec<f64>,
    pub body_bytes: usize,
    pub series: usize,
    /// In process, on the daemon's maps (medians, ms): building the
    /// metric families (every kernel read), of which the map entry counts
    /// (`mapstat`, which opens every pinned map: `opens_ms` alone) and the
    /// per-device counters.
    pub families_ms: f64,
    pub mapstat_ms: f64,
    pub opens_ms: f64,
    pub counters_ms: f64,
}

/// Times the scrape's parts in process, `n` times each (medians, ms).
fn breakdown(pin_dir: &Path, policy: &str, n: usize) -> anyhow::Result<[f64; 4]> {
    let cfg = config::parse(
        Path::new("iotfence.yaml"),
        &format!(
            "interfaces: [iot0]\npolicy: policy.yaml\npin_dir: {}\n",
            pin_dir.display()
        ),
    )
    .map_err(|d| anyhow::anyhow!("config: {d:?}"))?;
    // Fresh device ids are assigned in file order, as compile numbers them.
    let compiled = compile::compile(Path::new("policy.yaml"), policy, &cfg)
        .map_err(|d| anyhow::anyhow!("policy: {d:?}"))?;
    let shared = Shared::new(
        pin_dir.to_path_buf(),
        Default::default(),
        Default::default(),
        Default::default(),
    );
    shared.applied(&compiled);
    let kernel = Counters::open(pin_dir)?;
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut v = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            f()?;
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(crate::median(v))
    };
    let families = time(&mut || render::families(&shared, &kernel).map(drop))?;
    let mapstat = time(&mut || mapstat::pinned(pin_dir).map(drop))?;
    let opens = time(&mut || {
        for name in map_names::ALL {
            iotfence::kernel::pins::map_data(pin_dir, name)?.info()?;
        }
        Ok(())
    })?;
    let counters = time(&mut || {
        for d in &compiled.devices {
            for (v, r) in render::slots() {
                kernel.counter_sum(counter_index(d.id, v, r))?;
            }
        }
        Ok(())
    })?;
    Ok([families, mapstat, opens, counters])
}

/// Every device's traffic through the pinned XDP program.
fn traffic(pin_dir: &Path, devices: usize) -> anyhow::Result<()> {
    let prog = floor::open_pinned(&pin_dir.join("progs").join(prog_names::XDP))?;
    for i in 0..devices {
        for (dst, port) in [
            ("2001:db8:ff::10", 443),
            ("2001:db8:ff::bad", 22),
            ("2001:db8:ff::bad", 23),
            ("2001:db8:ff::bad", 8080),
        ] {
            let frame = Packet::eth(device_mac(i), packet::ROUTER_MAC)
                .ipv6(device_ip(i), v6(dst))
                .tcp(40_000, port)
                .flags(TCP_SYN)
                .build();
            floor::time(&prog, &frame, 1)?;
        }
    }
    Ok(())
}

/// `n` timed GETs of /metrics from inside the calling thread's namespace:
/// (ms each, the last body).
fn get_n(addr: SocketAddr, n: usize) -> anyhow::Result<(Vec<f64>, String)> {
    let mut times = Vec::new();
    let mut body = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        let text = String::from_utf8(raw)?;
        let (head, b) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "/metrics: {head}");
        body = b.to_string();
    }
    Ok((times, body))
}

pub fn run(devices: usize, n: usize) -> anyhow::Result<Scrapes> {
    let ns = Netns::new("iotf-bm")?;
    ns.ip(&[
        "link", "add", "iot0", "type", "veth", "peer", "name", "iot0p",
    ])?;
    for dev in ["iot0", "iot0p"] {
        ns.ip(&["link", "set", dev, "up"])?;
    }
    let pins = PinDir::new();
    let dir = TempDir::new("iotfence-scrape-")?;
    let policy = many_devices(devices);
    std::fs::write(dir.0.join("policy.yaml"), &policy)?;
    let cfg = dir.0.join("iotfence.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interfaces: [iot0]\nattach: xdp\npolicy: policy.yaml\npin_dir: {}\nstate_dir: {}\n\
             metrics:\n  listen: {LISTEN}\nevents:\n  per_second: 1\n  burst: 1\n",
            pins.path.display(),
            dir.0.join("state").display()
        ),
    )?;
    let mut daemon = Daemon::start(&ns, &cfg)?;
    let result = (|| {
        traffic(&pins.path, devices)?;
        let addr: SocketAddr = LISTEN.parse()?;
        let (ms, body) = ns.run(move || get_n(addr, n))??;
        let series = observe::parse(&body)?.len();
        let [families_ms, mapstat_ms, opens_ms, counters_ms] =
            breakdown(&pins.path, &policy, n.min(20))?;
        Ok(Scrapes {
            ms,
            body_bytes: body.len(),
            series,
            families_ms,
            mapstat_ms,
            opens_ms,
            counters_ms,
        })
    })();
    // The daemon stops before its pins go (PinDir's drop detaches).
    daemon.terminate()?;
    result
}
