//! DNS in the lab: Debian's dnsmasq as the router's resolver, serving lab
//! names from a hosts file, and a stub resolver for the device side (UDP or
//! TCP) built on hickory-proto.

use std::{
    fs::File,
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hickory_proto::{
    op::{Message, MessageType, Query},
    rr::{Name, RData, RecordType},
};

use crate::lab::{enter_ns, Netns, ROUTER_IOT_IP, ROUTER_IOT_IP6};

/// dnsmasq in the router namespace, listening on the router's IoT address;
/// stopped on drop.
pub struct Dnsmasq {
    child: Child,
}

/// Where the benchmark's upstream dnsmasq listens (router namespace).
pub const UPSTREAM: (&str, u16) = ("127.0.0.1", 5353);

impl Dnsmasq {
    /// The router's resolver, answering from its own hosts file: `hosts`:
    /// (name, address) lines; `cnames`: (alias, target) pairs; every answer
    /// carries `ttl`.
    pub fn start(
        router: &Netns,
        dir: &Path,
        hosts: &[(String, IpAddr)],
        cnames: &[(&str, &str)],
        ttl: u32,
    ) -> anyhow::Result<Self> {
        let mut args = vec![
            format!("--listen-address={ROUTER_IOT_IP}"),
            format!("--listen-address={ROUTER_IOT_IP6}"),
            format!("--local-ttl={ttl}"),
            format!(
                "--addn-hosts={}",
                write_hosts(dir, "lab.hosts", hosts)?.display()
            ),
        ];
        for (alias, target) in cnames {
            args.push(format!("--cname={alias},{target}"));
        }
        Self::spawn(router, &args, (ROUTER_IOT_IP, 53))
    }

    /// A resolver elsewhere (a device's hard-coded one, say) in `ns`,
    /// listening on `v4` and `v6`, answering `hosts` from its own hosts
    /// file.
    pub fn at(
        ns: &Netns,
        dir: &Path,
        (v4, v6): (&'static str, &str),
        hosts: &[(String, IpAddr)],
    ) -> anyhow::Result<Self> {
        let args = [
            format!("--listen-address={v4}"),
            format!("--listen-address={v6}"),
            format!(
                "--addn-hosts={}",
                write_hosts(dir, &format!("at-{v4}.hosts"), hosts)?.display()
            ),
        ];
        Self::spawn(ns, &args, (v4, 53))
    }

    /// An authoritative-like server for `hosts` on [`UPSTREAM`], for a
    /// resolver that forwards to it ([`Dnsmasq::forwarder`]).
    pub fn upstream(
        ns: &Netns,
        dir: &Path,
        hosts: &[(String, IpAddr)],
        ttl: u32,
    ) -> anyhow::Result<Self> {
        let args = [
            format!("--listen-address={}", UPSTREAM.0),
            format!("--port={}", UPSTREAM.1),
            format!("--local-ttl={ttl}"),
            format!(
                "--addn-hosts={}",
                write_hosts(dir, "upstream.hosts", hosts)?.display()
            ),
        ];
        Self::spawn(ns, &args, UPSTREAM)
    }

    /// The router's resolver forwarding everything to [`UPSTREAM`], as a
    /// router forwards to its ISP; `extra`: more options (e.g. `--nftset`,
    /// which dnsmasq applies to forwarded answers only).
    pub fn forwarder(router: &Netns, extra: &[String]) -> anyhow::Result<Self> {
        let mut args = vec![
            format!("--listen-address={ROUTER_IOT_IP}"),
            format!("--server={}#{}", UPSTREAM.0, UPSTREAM.1),
        ];
        args.extend_from_slice(extra);
        Self::spawn(router, &args, (ROUTER_IOT_IP, 53))
    }

    /// Starts dnsmasq in `ns` with `args` after the common ones, and waits
    /// until `probe` answers.
    fn spawn(ns: &Netns, args: &[String], probe: (&'static str, u16)) -> anyhow::Result<Self> {
        let ns_file = File::open(ns.path())?;
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--user=root",
            "--pid-file",
            "--log-facility=-",
        ])
        .args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the test process, even when that is killed; its
                // own process group holds the children it forks for DNS
                // over TCP, so dropping it kills them too.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::setpgid(0, 0);
                enter_ns(&ns_file)
            });
        }
        let child = cmd
            .spawn()
            .context("starting dnsmasq (Debian package dnsmasq-base)")?;
        let mut d = Self { child };
        // Ready when it answers (any answer: a forwarder may refuse).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(status) = d.child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = d.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                bail!("dnsmasq exited ({status}): {err}");
            }
            let up = ns.run(move || {
                let s = UdpSocket::bind("0.0.0.0:0").ok()?;
                s.connect(probe).ok()?;
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                s.send(&query_bytes(1, "ready.invalid", RecordType::A))
                    .ok()?;
                let mut b = [0u8; 512];
                s.recv(&mut b).ok()
            })?;
            if up.is_some() {
                return Ok(d);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("dnsmasq did not answer within 5 s")
    }

    /// Process id, for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Writes `hosts` as a hosts file named `name` in `dir`.
fn write_hosts(dir: &Path, name: &str, hosts: &[(String, IpAddr)]) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    let mut text = String::new();
    for (host, ip) in hosts {
        text.push_str(&format!("{ip} {host}\n"));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.to_vec().unwrap()
}

/// Addresses in an answer (any owner name: this is the device's view).
pub fn addresses(answer: &[u8]) -> Vec<IpAddr> {
    let Ok(m) = Message::from_vec(answer) else {
        return Vec::new();
    };
    if m.metadata.message_type != MessageType::Response {
        return Vec::new();
    }
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::from(a.0)),
            RData::AAAA(a) => Some(IpAddr::from(a.0)),
            _ => None,
        })
        .collect()
}

/// A stub resolver used from a device namespace thread.
pub struct Stub {
    udp: UdpSocket,
    next_id: u16,
    pub resolver: SocketAddr,
    /// How long `resolve` waits for its answer.
    pub timeout: Duration,
}

impl Stub {
    /// Must be called on a thread inside the device's namespace.
    pub fn new(resolver: &str) -> std::io::Result<Self> {
        let ip: IpAddr = resolver.parse().expect("a resolver address");
        let resolver = SocketAddr::new(ip, 53);
        let udp = UdpSocket::bind(if ip.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
        udp.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Self {
            udp,
            next_id: 0x1000,
            resolver,
            timeout: Duration::from_secs(2),
        })
    }

    /// Resolves over UDP; the answer's addresses, or `None` on timeout.
    pub fn resolve(&mut self, name: &str, qtype: RecordType) -> Option<Vec<IpAddr>> {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.udp
            .send_to(&query_bytes(id, name, qtype), self.resolver)
            .ok()?;
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.udp
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let (n, from) = self.udp.recv_from(&mut buf).ok()?;
            if from == self.resolver && n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Some(addresses(&buf[..n]));
            }
        }
    }

    /// Resolves over TCP (a fresh connection, one query).
    pub fn resolve_tcp(&mut self, name: &str, qtype: RecordType) -> Option<Vec<IpAddr>> {
        let mut s = TcpStream::connect_timeout(&self.resolver, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let q = query_bytes(0x4242, name, qtype);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut msg).ok()?;
        Some(addresses(&msg))
    }
}

/// A response to `name` (id `id`) with one A record, as a forger would send.
pub fn answer_bytes(id: u16, name: &str, addr: std::net::Ipv4Addr, ttl: u32) -> Vec<u8> {
    use hickory_proto::rr::{rdata::A, Record};
    let n = Name::from_ascii(name).unwrap();
    let mut m = Message::response(id, hickory_proto::op::OpCode::Query);
    m.add_query(Query::query(n.clone(), RecordType::A));
    m.add_answer(Record::from_rdata(n, ttl, RData::A(A(addr))));
    m.to_vec().unwrap()
}

/// Sends a raw Ethernet frame out of `ifname` from inside `ns` (AF_PACKET:
/// it passes the interface's TC egress hook like any frame the router sends).
pub fn send_frame(ns: &Netns, ifname: &str, frame: Vec<u8>) -> anyhow::Result<()> {
    let ifname = std::ffi::CString::new(ifname)?;
    ns.run(move || -> anyhow::Result<()> {
        let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
        if ifindex == 0 {
            bail!("no interface {ifname:?}");
        }
        // The daemon's own re-injection socket (mark 0: an ordinary frame).
        let sent = iotfence::dns::inject::Injector::new(0)?.send(ifindex, &frame);
        // ENOBUFS: a TC program took the frame (iotfence holds DNS answers).
        match sent {
            Err(e) if e.raw_os_error() != Some(libc::ENOBUFS) => bail!("sendto: {e}"),
            _ => {}
        }
        Ok(())
    })?
}

/// The MAC address of `ifname` in `ns`.
pub fn mac_of(ns: &Netns, ifname: &str) -> anyhow::Result<[u8; 6]> {
    let v = ns.link(ifname, false)?;
    let s = v["address"].as_str().context("no MAC")?;
    Ok(s.parse::<iotfence_common::Mac>().context("bad MAC")?.0)
}
