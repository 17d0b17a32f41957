//! The three namespaces (generator, router, sink), the filters set up on
//! the router, and the measurement of what it handles.

use std::{
    fs::File,
    os::fd::OwnedFd,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use iotfence_common::Mac;
use iotfence_tests::{
    floor,
    lab::{enter_ns, Daemon, Netns},
    privileged::{PinDir, TempDir},
    reference::Reference,
};

use super::{
    cpu::{cpu_times, is_kthread, set_affinity, ticks_per_second},
    fleet::ROUTER_IOT_MAC,
    Applied, Filter, Fleet, Load, Mix, Sample, GEN_CPU, ROUTER_CPU,
};

const SINK_MAC: &str = "02:00:00:00:be:02";
const SINK_IP: &str = "198.51.100.2";
/// Frames per generator syscall (each call sets up a page pool: calls must
/// be few).
const FRAMES_PER_CALL: u32 = 1 << 18;

/// The three namespaces and the sink's XDP program.
pub struct Topology {
    pub generator: Netns,
    pub router: Netns,
    pub sink: Netns,
    gen_ifindex: u32,
    _sink_link: OwnedFd,
    dir: TempDir,
}

impl Topology {
    pub fn build() -> anyhow::Result<Self> {
        let generator = Netns::new("iotf-bg")?;
        let router = Netns::new("iotf-br")?;
        let sink = Netns::new("iotf-bs")?;
        generator.ip(&[
            "link",
            "add",
            "gen0",
            "type",
            "veth",
            "peer",
            "name",
            "iot0",
            "netns",
            &router.name,
        ])?;
        router.ip(&[
            "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", &sink.name,
        ])?;
        router.ip(&[
            "link",
            "set",
            "iot0",
            "address",
            &Mac(ROUTER_IOT_MAC).to_string(),
        ])?;
        router.ip(&["addr", "add", "192.0.2.1/24", "dev", "iot0"])?;
        router.ip(&["addr", "add", "198.51.100.1/24", "dev", "wan0"])?;
        sink.ip(&["link", "set", "eth0", "address", SINK_MAC])?;
        sink.ip(&["addr", "add", &format!("{SINK_IP}/24"), "dev", "eth0"])?;
        for (ns, dev) in [
            (&generator, "gen0"),
            (&router, "iot0"),
            (&router, "wan0"),
            (&sink, "eth0"),
        ] {
            ns.ip(&["link", "set", dev, "up"])?;
        }
        router.sysctl("net.ipv4.ip_forward", "1")?;
        router.ip(&["route", "add", "203.0.113.0/24", "via", SINK_IP])?;
        router.ip(&[
            "neigh",
            "replace",
            SINK_IP,
            "lladdr",
            SINK_MAC,
            "dev",
            "wan0",
            "nud",
            "permanent",
        ])?;
        // A veth receives XDP frames only with NAPI on: GRO enables it
        // without an XDP program (the no-filter, TC and nftables cases).
        router.exec(&["ethtool", "-K", "iot0", "gro", "on"])?;
        // iot0's receive work in a kernel thread, pinned below.
        router.exec(&["sh", "-c", "echo 1 > /sys/class/net/iot0/threaded"])?;
        let gen_ifindex = ifindex(&generator, "gen0")?;
        let link = attach_in(&sink, "eth0", floor::xdp_returning(floor::XDP_DROP)?)?;
        let dir = TempDir::new("iotfence-live-")?;
        Ok(Self {
            generator,
            router,
            sink,
            gen_ifindex,
            _sink_link: link,
            dir,
        })
    }

    /// Pins iot0's NAPI threads to the router CPU. Re-run after every
    /// attach: an XDP attach on a veth can recreate them. Kernel threads
    /// carry no namespace, so every `napi/iot0-*` thread is pinned: the
    /// benchmark must not run beside the lab tests.
    fn pin_router_threads(&self) -> anyhow::Result<usize> {
        let mut pinned = 0;
        for entry in std::fs::read_dir("/proc")? {
            let path = entry?.path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if !comm.starts_with("napi/iot0-") {
                continue;
            }
            let pid: i32 = path.file_name().unwrap().to_string_lossy().parse()?;
            if is_kthread(pid) {
                set_affinity(pid, ROUTER_CPU)?;
                pinned += 1;
            }
        }
        Ok(pinned)
    }

    /// Sets `filter` up; what it returns tears it down when dropped.
    pub fn apply(&self, filter: Filter, fleet: &Fleet) -> anyhow::Result<Applied> {
        let applied = match filter {
            Filter::None => Applied::Nothing,
            Filter::XdpDrop => {
                let prog = floor::xdp_returning(floor::XDP_DROP)?;
                Applied::Link {
                    _link: attach_in(&self.router, "iot0", prog)?,
                }
            }
            Filter::Reference => {
                let r = Reference::load()?;
                for i in 0..fleet.devices {
                    r.allow(&fleet.frame(i, false))?;
                }
                let link = attach_in(&self.router, "iot0", r.prog.try_clone()?)?;
                Applied::Reference {
                    _link: link,
                    _reference: r,
                }
            }
            Filter::NftNetdev | Filter::NftForward => {
                let file = self.dir.join("ruleset.nft");
                std::fs::write(&file, fleet.nft_ruleset(filter))?;
                self.router.exec(&["nft", "-f", file.to_str().unwrap()])?;
                let family = if filter == Filter::NftNetdev {
                    "netdev"
                } else {
                    "inet"
                };
                Applied::Nft {
                    ns: self.router.name.clone(),
                    family,
                }
            }
            Filter::IotfenceXdp | Filter::IotfenceTc => {
                let attach = if filter == Filter::IotfenceXdp {
                    "xdp"
                } else {
                    "tc"
                };
                return self.apply_iotfence(attach, &fleet.policy_yaml(), "");
            }
        };
        self.pin_router_threads_checked()?;
        Ok(applied)
    }

    /// Starts the real daemon on iot0 (`attach`: xdp or tc) with
    /// `policy_yaml` and `extra_config` (more top-level configuration keys);
    /// what it returns stops it when dropped. The policy is the file
    /// `policy_path()`, for reloads.
    pub fn apply_iotfence(
        &self,
        attach: &str,
        policy_yaml: &str,
        extra_config: &str,
    ) -> anyhow::Result<Applied> {
        let pins = PinDir::new();
        std::fs::write(self.policy_path(), policy_yaml)?;
        let cfg = self.dir.join("iotfence.yaml");
        std::fs::write(
            &cfg,
            format!(
                "interfaces: [iot0]\nattach: {attach}\npolicy: policy.yaml\npin_dir: {}\n\
                 state_dir: {}\nmetrics: {{ enabled: false }}\nevents:\n  per_second: 1\n  burst: 1\n\
                 {extra_config}",
                pins.path.display(),
                self.dir.join("state").display()
            ),
        )?;
        let daemon = Daemon::start(&self.router, &cfg)?;
        let applied = Applied::Iotfence { daemon, pins };
        self.pin_router_threads_checked()?;
        Ok(applied)
    }

    /// The policy file of `apply_iotfence`'s daemon.
    pub fn policy_path(&self) -> PathBuf {
        self.dir.join("policy.yaml")
    }

    fn pin_router_threads_checked(&self) -> anyhow::Result<()> {
        if self.pin_router_threads()? == 0 {
            bail!("no NAPI thread of iot0 to pin (threaded NAPI unavailable?)");
        }
        Ok(())
    }

    /// Starts offering `mix` from the generator CPU; it runs until the
    /// returned guard is dropped.
    pub fn load(&self, fleet: &Fleet, mix: Mix) -> anyhow::Result<Load> {
        let gen_ns = File::open(self.generator.path())?;
        let prog = fleet.generator(mix)?;
        let ifindex = self.gen_ifindex;
        let template = fleet.template();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_gen = stop.clone();
        let thread = thread::spawn(move || -> anyhow::Result<()> {
            enter_ns(&gen_ns)?;
            set_affinity(0, GEN_CPU)?;
            let mut sent = 0u64;
            // Bounded: the guard stops it; the cap is a backstop of 10
            // minutes at 10 Mpps.
            while !stop_gen.load(Ordering::Relaxed) && sent < 6_000_000_000 {
                match floor::send_live(&prog, ifindex, &template, FRAMES_PER_CALL) {
                    // The kernel ends a test run early when a signal is
                    // pending (EINTR); what it sent counts on the router.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    r => r?,
                }
                sent += FRAMES_PER_CALL as u64;
            }
            Ok(())
        });
        // Let the rings fill and the rate settle.
        thread::sleep(Duration::from_millis(200));
        Ok(Load {
            stop,
            thread: Some(thread),
        })
    }

    /// Offers `mix` from the generator CPU for `secs`, and measures the
    /// router.
    pub fn measure(&self, fleet: &Fleet, mix: Mix, secs: f64) -> anyhow::Result<Sample> {
        let load = self.load(fleet, mix)?;
        let rx0 = rx_packets(&self.router, "iot0")?;
        let fw0 = rx_packets(&self.sink, "eth0")?;
        let cpu0 = cpu_times(ROUTER_CPU)?;
        let t0 = Instant::now();
        thread::sleep(Duration::from_secs_f64(secs));
        let rx1 = rx_packets(&self.router, "iot0")?;
        let fw1 = rx_packets(&self.sink, "eth0")?;
        let cpu1 = cpu_times(ROUTER_CPU)?;
        let elapsed = t0.elapsed().as_secs_f64();
        load.stop()?;
        let handled = rx1 - rx0;
        let busy = cpu1.busy - cpu0.busy;
        let total = (cpu1.total - cpu0.total).max(1);
        Ok(Sample {
            handled_pps: handled as f64 / elapsed,
            forwarded_pps: (fw1 - fw0) as f64 / elapsed,
            cpu_busy: busy as f64 / total as f64,
            cpu_ns_per_packet: busy as f64 * 1e9 / ticks_per_second() / handled.max(1) as f64,
        })
    }

    /// Frames the sink has received (forwarded by the router).
    pub fn forwarded(&self) -> anyhow::Result<u64> {
        rx_packets(&self.sink, "eth0")
    }
}

/// Attaches XDP program `prog` to `dev` of `ns`; detached when the
/// returned link closes.
fn attach_in(ns: &Netns, dev: &str, prog: OwnedFd) -> anyhow::Result<OwnedFd> {
    let index = ifindex(ns, dev)?;
    let file = File::open(ns.path())?;
    let link = thread::spawn(move || {
        enter_ns(&file)?;
        floor::attach_xdp(&prog, index)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("attach thread panicked"))??;
    Ok(link)
}

fn ifindex(ns: &Netns, dev: &str) -> anyhow::Result<u32> {
    ns.link(dev, false)?["ifindex"]
        .as_u64()
        .map(|i| i as u32)
        .with_context(|| format!("ifindex of {dev} in {}", ns.name))
}

fn rx_packets(ns: &Netns, dev: &str) -> anyhow::Result<u64> {
    ns.link(dev, true)?["stats64"]["rx"]["packets"]
        .as_u64()
        .with_context(|| format!("rx packets of {dev} in {}", ns.name))
}
