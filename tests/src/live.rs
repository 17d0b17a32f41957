//! Live throughput on a veth path (benchmark part 2): 64-byte frames from
//! many devices, generated in the kernel, into the router's IoT interface,
//! judged by iotfence (XDP or TC) or by nftables with the same policy, and
//! forwarded to a sink. Measured: packets the router handled per second,
//! packets forwarded, and router CPU per packet.
//!
//! Topology (namespaces, removed on drop):
//! `gen` ──veth── `router` (iot0 → forwarding → wan0) ──veth── `sink`.
//! - The generator sends XDP_TX live frames (`floor::send_live`) out of
//!   `gen0` from CPU 0: a veth peer receives them as if from a NIC.
//! - The router's receive work (iot0's NAPI) runs in a thread pinned to
//!   CPU 1, so the router's capacity is what one core sustains, and its
//!   CPU time is read from /proc/stat.
//! - The sink drops what arrives with an XDP program; its receive work runs
//!   on the router's CPU too (veth transmit schedules it there), the same
//!   for every filter.

use std::{
    fs::File,
    net::Ipv4Addr,
    os::fd::OwnedFd,
    path::PathBuf,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use iotfence::policy::compile::format_mac;

use crate::{
    floor,
    lab::{enter_ns, Daemon, Netns},
    packet::Packet,
    privileged::{PinDir, TempDir},
    reference::Reference,
};

pub const GEN_CPU: usize = 0;
pub const ROUTER_CPU: usize = 1;
const ROUTER_IOT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbe, 0x01];
const SINK_MAC: &str = "02:00:00:00:be:02";
const SINK_IP: &str = "198.51.100.2";
/// Frames per generator syscall (each call sets up a page pool: calls must
/// be few).
const FRAMES_PER_CALL: u32 = 1 << 18;
const ALLOWED_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const FORBIDDEN_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);

/// Which frames the generator sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Every frame forbidden: a flood.
    Flood,
    /// Each frame allowed or forbidden with even odds.
    Half,
    /// Every frame allowed.
    Allowed,
}

/// What judges the device's packets on the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// No filter: every frame is routed (the forwarding cost alone).
    None,
    /// An XDP program on iot0 that only returns XDP_DROP: the most any
    /// filter on this path can handle (its physical limit).
    XdpDrop,
    /// The reference allowlist (`reference.rs`) as an XDP program on iot0,
    /// loaded with the fleet: what the least an XDP allowlist does achieves
    /// on this path, the yardstick of the CI gate.
    Reference,
    IotfenceXdp,
    IotfenceTc,
    /// nftables netdev ingress chain with named sets (drops before routing).
    NftNetdev,
    /// nftables inet forward chain with conntrack, as dnsmasq `--nftset`
    /// deployments run it.
    NftForward,
}

impl Filter {
    pub const ALL: [Filter; 7] = [
        Filter::None,
        Filter::XdpDrop,
        Filter::Reference,
        Filter::IotfenceXdp,
        Filter::IotfenceTc,
        Filter::NftNetdev,
        Filter::NftForward,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Filter::None => "no filter",
            Filter::XdpDrop => "XDP_DROP only (the path's limit)",
            Filter::Reference => "reference allowlist (XDP, raw BPF)",
            Filter::IotfenceXdp => "iotfence XDP",
            Filter::IotfenceTc => "iotfence TC",
            Filter::NftNetdev => "nftables netdev ingress, sets",
            Filter::NftForward => "nftables inet forward + conntrack, sets",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::XdpDrop => "xdp_drop",
            Filter::Reference => "reference_xdp",
            Filter::IotfenceXdp => "iotfence_xdp",
            Filter::IotfenceTc => "iotfence_tc",
            Filter::NftNetdev => "nft_netdev",
            Filter::NftForward => "nft_forward_ct",
        }
    }
}

/// The devices and the policy every filter enforces: each device may send
/// UDP to port 443 of 203.0.113.0/28 (the generator's allowed frames go to
/// 203.0.113.1, its forbidden ones to 203.0.113.200) and nothing else.
pub struct Fleet {
    pub devices: usize,
}

impl Fleet {
    pub fn mac(&self, i: usize) -> [u8; 6] {
        [0x02, 0, 0, 0x01, (i >> 8) as u8, i as u8]
    }

    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 10 + i as u8)
    }

    /// The frame the generator sends for device `i` (checksum aside):
    /// to the allowed destination, or the forbidden one.
    pub fn frame(&self, i: usize, forbidden: bool) -> Vec<u8> {
        let dst = if forbidden {
            FORBIDDEN_DST
        } else {
            ALLOWED_DST
        };
        self.packet(i, dst).build()
    }

    /// Device `i`'s frame to `dst`, unbuilt. 18 bytes of payload: a
    /// 60-byte frame, 64 on the wire with the FCS.
    fn packet(&self, i: usize, dst: Ipv4Addr) -> Packet {
        Packet::eth(self.mac(i), ROUTER_IOT_MAC)
            .ipv4(self.ip(i), dst)
            .udp(40000, 443)
            .data(&[0u8; 18])
    }

    /// The frame the generator starts from: device 0, allowed destination,
    /// IP id 0x8000 (see `generator`).
    pub fn template(&self) -> Vec<u8> {
        self.packet(0, ALLOWED_DST)
            .id(0x8000)
            .header_checksum()
            .build()
    }

    /// The traffic generator: an XDP program run as live frames on the
    /// template. Per frame it draws a device `d` (< `devices`, at most 240)
    /// and, for `Mix::Half`, whether the frame is forbidden `f`; it writes
    /// the device's MAC and address and the destination (203.0.113.1, or
    /// .200 outside the allowed /28), and lowers the IP id by what it added
    /// to the addresses, so the header checksum stays valid untouched.
    pub fn generator(&self, mix: Mix) -> std::io::Result<OwnedFd> {
        use floor::insn;
        assert!(
            self.devices <= 240,
            "192.0.2.10 + devices must stay in the /24"
        );
        let n = self.devices as i32;
        let step = (FORBIDDEN_DST.octets()[3] - ALLOWED_DST.octets()[3]) as i32;
        let mut p = vec![
            insn(0xbf, 6, 1, 0, 0),      // r6 = ctx
            insn(0x85, 0, 0, 0, 7),      // r0 = bpf_get_prandom_u32()
            insn(0xbf, 7, 0, 0, 0),      // r7 = r0
            insn(0x57, 7, 0, 0, 0xffff), // r7 &= 0xffff
            insn(0x97, 7, 0, 0, n),      // r7 %= devices: d
        ];
        match mix {
            Mix::Flood => p.push(insn(0xb7, 8, 0, 0, 1)), // r8 = 1: f
            Mix::Allowed => p.push(insn(0xb7, 8, 0, 0, 0)), // r8 = 0: f
            Mix::Half => p.extend([
                insn(0xbf, 8, 0, 0, 0),  // r8 = r0
                insn(0x77, 8, 0, 0, 16), // r8 >>= 16
                insn(0x57, 8, 0, 0, 1),  // r8 &= 1: f
            ]),
        }
        p.extend([
            insn(0x61, 2, 6, 0, 0),  // r2 = ctx->data
            insn(0x61, 3, 6, 4, 0),  // r3 = ctx->data_end
            insn(0xbf, 4, 2, 0, 0),  // r4 = r2
            insn(0x07, 4, 0, 0, 42), // r4 += 42
        ]);
        // The page pool recycles the frames' pages after the router is done
        // with them, and forwarding rewrote their Ethernet header, TTL and
        // checksum in place: restore those bytes from the template first.
        let template = self.template();
        let mut body: Vec<u64> = (0..12)
            .chain(22..26)
            .map(|i| insn(0x72, 2, 0, i as i16, template[i] as i32)) // *(u8 *)(r2 + i) = imm
            .collect();
        body.extend([
            insn(0x73, 2, 7, 11, 0),   // src MAC[5] = d
            insn(0xbf, 5, 7, 0, 0),    // r5 = d
            insn(0x07, 5, 0, 0, 10),   // r5 += 10
            insn(0x73, 2, 5, 29, 0),   // src IP[3] = 10 + d
            insn(0xbf, 5, 8, 0, 0),    // r5 = f
            insn(0x27, 5, 0, 0, step), // r5 *= step
            insn(0xbf, 9, 5, 0, 0),    // r9 = f * step
            insn(0x07, 5, 0, 0, ALLOWED_DST.octets()[3] as i32),
            insn(0x73, 2, 5, 33, 0),     // dst IP[3] = 1 + f * step
            insn(0xb7, 5, 0, 0, 0x8000), // r5 = 0x8000
            insn(0x1f, 5, 7, 0, 0),      // r5 -= d
            insn(0x1f, 5, 9, 0, 0),      // r5 -= f * step
            insn(0x73, 2, 5, 19, 0),     // IP id, low byte
            insn(0x77, 5, 0, 0, 8),      // r5 >>= 8
            insn(0x73, 2, 5, 18, 0),     // IP id, high byte
            insn(0xb7, 0, 0, 0, floor::XDP_TX as i32),
            insn(0x95, 0, 0, 0, 0),
        ]);
        // if r4 > r3 (frame too short): past the body, to the drop.
        p.push(insn(0x2d, 4, 3, body.len() as i16, 0));
        p.extend(body);
        p.extend([
            insn(0xb7, 0, 0, 0, floor::XDP_DROP as i32),
            insn(0x95, 0, 0, 0, 0),
        ]);
        floor::load_xdp(&p)
    }

    pub fn policy_yaml(&self) -> String {
        let mut y = String::from(
            "profiles:\n  sensor:\n    egress:\n      - to: 203.0.113.0/28\n        proto: udp\n        ports: 443\ndevices:\n",
        );
        for i in 0..self.devices {
            y += &format!(
                "  - name: dev-{i}\n    mac: {}\n    ip: {}\n    profile: sensor\n",
                format_mac(&self.mac(i)),
                self.ip(i)
            );
        }
        y
    }

    /// The same policy as nftables named sets, in a netdev ingress chain
    /// or an inet forward chain behind conntrack.
    pub fn nft_ruleset(&self, filter: Filter) -> String {
        let macs: Vec<String> = (0..self.devices)
            .map(|i| format_mac(&self.mac(i)))
            .collect();
        let sets = format!(
            "  set iot_devices {{ type ether_addr; elements = {{ {} }} }}\n  \
             set allowed {{ type ipv4_addr . inet_proto . inet_service; flags interval; \
             elements = {{ 203.0.113.0/28 . udp . 443 }} }}\n",
            macs.join(", ")
        );
        match filter {
            Filter::NftNetdev => format!(
                "table netdev iotfence_bench {{\n{sets}  chain ingress {{\n    \
                 type filter hook ingress device \"iot0\" priority 0; policy accept;\n    \
                 meta protocol != ip accept\n    \
                 ether saddr @iot_devices ip daddr . meta l4proto . th dport @allowed accept\n    \
                 drop\n  }}\n}}\n"
            ),
            Filter::NftForward => format!(
                "table inet iotfence_bench {{\n{sets}  chain forward {{\n    \
                 type filter hook forward priority 0; policy accept;\n    \
                 ct state established,related accept\n    \
                 iifname \"iot0\" ether saddr @iot_devices ip daddr . meta l4proto . th dport @allowed accept\n    \
                 iifname \"iot0\" drop\n  }}\n}}\n"
            ),
            _ => String::new(),
        }
    }
}

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
            &format_mac(&ROUTER_IOT_MAC),
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
                Applied::Link(attach_in(&self.router, "iot0", prog)?)
            }
            Filter::Reference => {
                let r = Reference::load()?;
                for i in 0..fleet.devices {
                    r.allow(&fleet.frame(i, false))?;
                }
                let link = attach_in(&self.router, "iot0", r.prog.try_clone()?)?;
                Applied::Reference(link, r)
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
                floor::send_live(&prog, ifindex, &template, FRAMES_PER_CALL)?;
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

/// The generator at work; stopped (and joined) on drop, also on an early
/// error.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<anyhow::Result<()>>>,
}

impl Load {
    /// Stops the generator and reports its error, if it failed.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(|t| t.join()) {
            Some(Err(_)) => bail!("generator panicked"),
            Some(Ok(r)) => r,
            None => Ok(()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A filter in place; removed on drop.
pub enum Applied {
    Nothing,
    /// A BPF link, detached when its fd closes.
    Link(OwnedFd),
    /// The reference program's link, and the program with its maps.
    Reference(OwnedFd, Reference),
    Nft {
        ns: String,
        family: &'static str,
    },
    // Field order: the daemon stops before the pins (and the attachment)
    // go.
    Iotfence {
        daemon: Daemon,
        pins: PinDir,
    },
}

impl Drop for Applied {
    fn drop(&mut self) {
        match self {
            Applied::Nothing | Applied::Link(_) | Applied::Reference(..) => {}
            Applied::Nft { ns, family } => {
                let _ = Command::new("ip")
                    .args(["netns", "exec", ns, "nft", "delete", "table", family])
                    .arg("iotfence_bench")
                    .status();
            }
            Applied::Iotfence { daemon, .. } => {
                let _ = daemon.terminate();
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Frames iot0 received and the router processed, per second.
    pub handled_pps: f64,
    /// Frames that reached the sink, per second.
    pub forwarded_pps: f64,
    /// Share of the router CPU busy (not idle, not stolen by the host).
    pub cpu_busy: f64,
    pub cpu_ns_per_packet: f64,
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

struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Ticks of one CPU from /proc/stat: busy = user + nice + system + irq +
/// softirq; steal (the host's) counts in the total only.
fn cpu_times(cpu: usize) -> anyhow::Result<CpuTimes> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let label = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&label))
        .with_context(|| format!("no {label} in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Ok(CpuTimes {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        total: v.iter().take(8).sum(),
    })
}

pub fn ticks_per_second() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn set_affinity(pid: i32, cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t with one bit set, passed by pointer.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        bail!(
            "pinning {pid} to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn is_kthread(pid: i32) -> bool {
    // Kernel threads have no executable.
    std::fs::read_link(format!("/proc/{pid}/exe")).is_err()
}
