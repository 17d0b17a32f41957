//! The network-namespace lab: a router namespace whose IoT-facing veth
//! (`iot0`) carries iotfence, a switch namespace bridging the simulated
//! devices onto that segment, and an "internet" namespace with servers.
//! Addresses are documentation ranges only: IoT 192.0.2.0/24 and
//! 2001:db8:1::/64, internet 198.51.100.0/24, 203.0.113.0/24 and
//! 2001:db8:ff::/64. The internet namespace also answers for every address of
//! `ANY_V4` and `ANY_V6` (routes of type `local`), so tests can hand out
//! thousands of distinct server addresses. Everything is removed on drop.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::privileged::{require_root, unique, PinDir, TempDir};

pub const ROUTER_IOT_IP: &str = "192.0.2.1";
pub const ROUTER_WAN_IP: &str = "198.51.100.1";
/// Servers in the internet namespace.
pub const SERVER_A: &str = "198.51.100.7";
pub const SERVER_B: &str = "203.0.113.5";
pub const ROUTER_IOT_IP6: &str = "2001:db8:1::1";
pub const ROUTER_WAN_IP6: &str = "2001:db8:ff::1";
pub const SERVER_A6: &str = "2001:db8:ff::7";
/// Prefixes the internet namespace accepts connections on as a whole.
pub const ANY_V4: &str = "203.0.113.128/25";
pub const ANY_V6: &str = "2001:db8:ff::1:0/112";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        require_root();
        let name = unique(prefix);
        ip(&["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// Waits until no IPv6 address of the namespace is tentative (DAD done).
    pub fn wait_ipv6_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = Command::new("ip")
                .args(["-n", &self.name, "-6", "addr", "show", "tentative"])
                .output()?;
            if out.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "IPv6 addresses in {} still tentative after {timeout:?}",
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])
    }

    /// Runs a command in this namespace (`ip netns exec`, which also mounts
    /// the namespace's /sys); fails with its stderr.
    pub fn exec(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .with_context(|| format!("running {args:?} in {}", self.name))?;
        if !out.status.success() {
            bail!(
                "{args:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// `ip -j [-s] link show dev` of `dev` in this namespace (the first
    /// and only object of the JSON array).
    pub fn link(&self, dev: &str, stats: bool) -> anyhow::Result<serde_json::Value> {
        let mut a = vec!["-n", self.name.as_str(), "-j"];
        if stats {
            a.push("-s");
        }
        a.extend(["link", "show", "dev", dev]);
        let out = Command::new("ip").args(&a).output()?;
        if !out.status.success() {
            bail!("ip {a:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(v[0].take())
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let file = File::open(self.path())?;
        let h = thread::spawn(move || {
            enter_ns(&file).expect("setns");
            f()
        });
        h.join()
            .map_err(|_| anyhow::anyhow!("thread in {} panicked", self.name))
    }

    /// Starts `f` on a thread that has entered this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let file = File::open(self.path()).expect("opening the namespace");
        thread::spawn(move || {
            enter_ns(&file).expect("setns");
            f()
        })
    }

    /// Tries a TCP connection from inside this namespace; true if it was
    /// accepted and the server's greeting arrived.
    pub fn connect(&self, addr: &str, port: u16, timeout: Duration) -> bool {
        let ip: std::net::IpAddr = addr.parse().expect("an IP address");
        let target = SocketAddr::new(ip, port);
        self.run(move || {
            let Ok(mut s) = TcpStream::connect_timeout(&target, timeout) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(timeout));
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).is_ok() && &buf == b"hello"
        })
        .unwrap_or(false)
    }
}

/// Enters the network namespace of `file` (this thread, or a child before
/// exec).
pub fn enter_ns(file: &File) -> std::io::Result<()> {
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A TCP server greeting every client with "hello" and then echoing what
/// it sends, until dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(ns: &Netns, addr: &str, port: u16) -> anyhow::Result<Self> {
        let bind: SocketAddr = if addr.contains(':') {
            format!("[{addr}]:{port}").parse()?
        } else {
            format!("{addr}:{port}").parse()?
        };
        Self::bind(ns, bind)
    }

    /// Listens on every address of the namespace (IPv4 and IPv6).
    pub fn start_any(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        Self::bind(ns, format!("[::]:{port}").parse()?)
    }

    fn bind(ns: &Netns, bind: SocketAddr) -> anyhow::Result<Self> {
        let stop = serve_in(
            ns,
            move || {
                let l = TcpListener::bind(bind)?;
                l.set_nonblocking(true)?;
                Ok(l)
            },
            |l, flag| {
                while !flag.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nonblocking(false);
                            if s.write_all(b"hello").is_ok() {
                                let stop = flag.clone();
                                thread::spawn(move || echo(s, stop));
                            }
                        }
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            },
        )?;
        Ok(Self { stop })
    }
}

/// Runs a server on a thread inside `ns`: `open` binds its socket there
/// (its error is returned here, within 5 s), then `serve` runs until the
/// returned flag is set.
fn serve_in<S: 'static>(
    ns: &Netns,
    open: impl FnOnce() -> std::io::Result<S> + Send + 'static,
    serve: impl FnOnce(S, Arc<AtomicBool>) + Send + 'static,
) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let file = File::open(ns.path())?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        enter_ns(&file).expect("setns");
        match open() {
            Ok(s) => {
                let _ = tx.send(Ok(()));
                serve(s, flag);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5))??;
    Ok(stop)
}

/// Echoes until the peer closes, an error, or the server stops.
fn echo(mut s: TcpStream, stop: Arc<AtomicBool>) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct DeviceSpec {
    pub name: &'static str,
    pub mac: &'static str,
    /// Host part in 192.0.2.0/24.
    pub host: u8,
}

impl DeviceSpec {
    pub fn ip(&self) -> String {
        format!("192.0.2.{}", self.host)
    }

    pub fn ip6(&self) -> String {
        format!("2001:db8:1::{:x}", self.host)
    }
}

pub struct Lab {
    pub router: Netns,
    pub switch: Netns,
    pub internet: Netns,
    pub devices: Vec<(Netns, String)>,
    pub servers: Vec<Server>,
    pub dir: TempDir,
    pub daemon: Option<Daemon>,
    // Last: detach after the daemon is gone.
    pub pins: PinDir,
}

/// The router's IoT interface and its switch port (`mac`: keep the one an
/// earlier iot0 had, so the devices' neighbour caches stay right); returns
/// when iot0 came to exist.
fn add_iot0(router: &Netns, switch: &Netns, mac: Option<&str>) -> anyhow::Result<Instant> {
    router.ip(&[
        "link",
        "add",
        "iot0",
        "type",
        "veth",
        "peer",
        "name",
        "uplink",
        "netns",
        &switch.name,
    ])?;
    let created = Instant::now();
    if let Some(mac) = mac {
        router.ip(&["link", "set", "iot0", "address", mac])?;
    }
    switch.ip(&["link", "set", "uplink", "master", "br0", "up"])?;
    router.ip(&["addr", "add", "192.0.2.1/24", "dev", "iot0"])?;
    router.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "iot0", "nodad"])?;
    router.ip(&["link", "set", "iot0", "up"])?;
    Ok(created)
}

impl Lab {
    /// Deletes the router's IoT interface and creates it again (same name
    /// and MAC, a new ifindex), as a driver reload or a netdev re-creation
    /// does; returns when it is up, with the moment it came to exist.
    pub fn recreate_iot0(&self) -> anyhow::Result<Instant> {
        let mac = self.router.link("iot0", false)?["address"]
            .as_str()
            .context("iot0 MAC")?
            .to_string();
        self.router.ip(&["link", "del", "iot0"])?;
        add_iot0(&self.router, &self.switch, Some(&mac))
    }

    pub fn build(devices: &[DeviceSpec], ports: &[u16]) -> anyhow::Result<Self> {
        let pins = PinDir::new();
        let router = Netns::new("iotf-r")?;
        let switch = Netns::new("iotf-s")?;
        let internet = Netns::new("iotf-i")?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        add_iot0(&router, &switch, None)?;
        router.ip(&[
            "link",
            "add",
            "wan0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &internet.name,
        ])?;
        router.ip(&["addr", "add", "198.51.100.1/24", "dev", "wan0"])?;
        router.ip(&["addr", "add", "203.0.113.1/24", "dev", "wan0"])?;
        router.ip(&["addr", "add", "2001:db8:ff::1/64", "dev", "wan0", "nodad"])?;
        router.ip(&["link", "set", "wan0", "up"])?;
        router.sysctl("net.ipv4.ip_forward", "1")?;
        router.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        internet.ip(&["addr", "add", &format!("{SERVER_A}/24"), "dev", "eth0"])?;
        internet.ip(&["addr", "add", &format!("{SERVER_B}/24"), "dev", "eth0"])?;
        internet.ip(&[
            "addr",
            "add",
            &format!("{SERVER_A6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        internet.ip(&["link", "set", "eth0", "up"])?;
        internet.ip(&["route", "add", "192.0.2.0/24", "via", ROUTER_WAN_IP])?;
        internet.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            ROUTER_WAN_IP6,
        ])?;
        // Whole prefixes served by the internet namespace: the router routes
        // them to one neighbour, which treats every address in them as local.
        router.ip(&["route", "add", ANY_V4, "via", SERVER_A])?;
        router.ip(&["-6", "route", "add", ANY_V6, "via", SERVER_A6])?;
        internet.ip(&["route", "add", "local", ANY_V4, "dev", "lo"])?;
        internet.ip(&["-6", "route", "add", "local", ANY_V6, "dev", "lo"])?;
        let mut devs = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let ns = Netns::new("iotf-d")?;
            let port = format!("port{i}");
            ns.ip(&[
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &switch.name,
            ])?;
            switch.ip(&["link", "set", &port, "master", "br0", "up"])?;
            ns.ip(&["link", "set", "eth0", "address", d.mac])?;
            ns.ip(&["addr", "add", &format!("{}/24", d.ip()), "dev", "eth0"])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/64", d.ip6()),
                "dev",
                "eth0",
                "nodad",
            ])?;
            ns.ip(&["link", "set", "eth0", "up"])?;
            ns.ip(&["route", "add", "default", "via", ROUTER_IOT_IP])?;
            ns.ip(&["-6", "route", "add", "default", "via", ROUTER_IOT_IP6])?;
            devs.push((ns, d.name.to_string()));
        }
        // Link-local addresses finish duplicate address detection before
        // any test traffic: until then neighbour discovery stalls the first
        // IPv6 packets by a second or more.
        for ns in [&router, &switch, &internet]
            .into_iter()
            .chain(devs.iter().map(|(ns, _)| ns))
        {
            ns.wait_ipv6_ready(Duration::from_secs(5))?;
        }
        let mut servers = Vec::new();
        for addr in [SERVER_A, SERVER_B] {
            for p in ports {
                servers.push(Server::start(&internet, addr, *p)?);
            }
        }
        let dir = TempDir::new("iotfence-lab-")?;
        Ok(Self {
            router,
            switch,
            internet,
            devices: devs,
            servers,
            dir,
            daemon: None,
            pins,
        })
    }

    pub fn device(&self, name: &str) -> &Netns {
        &self
            .devices
            .iter()
            .find(|(_, n)| n == name)
            .unwrap_or_else(|| panic!("no lab device {name}"))
            .0
    }

    /// Writes the daemon configuration and policy into the lab directory.
    pub fn write_config(&self, attach: &str, policy: &str) -> anyhow::Result<PathBuf> {
        self.write_config_with(attach, policy, "")
    }

    /// Like `write_config`, with more top-level configuration keys (YAML).
    pub fn write_config_with(
        &self,
        attach: &str,
        policy: &str,
        extra: &str,
    ) -> anyhow::Result<PathBuf> {
        self.write_config_for(attach, policy, &[ROUTER_IOT_IP], extra)
    }

    /// Like `write_config_with`, with these resolvers.
    pub fn write_config_for(
        &self,
        attach: &str,
        policy: &str,
        resolvers: &[&str],
        extra: &str,
    ) -> anyhow::Result<PathBuf> {
        std::fs::write(self.dir.join("policy.yaml"), policy)?;
        let cfg = self.dir.join("iotfence.yaml");
        let resolvers = resolvers.join(", ");
        std::fs::write(
            &cfg,
            format!(
                "interfaces: [iot0]\nattach: {attach}\npolicy: policy.yaml\nresolvers: [{resolvers}]\npin_dir: {}\nstate_dir: {}\nevents:\n  per_second: 50\n  burst: 50\n  file: {}\n{extra}",
                self.pins.path.display(),
                self.dir.join("state").display(),
                self.events_file().display()
            ),
        )?;
        Ok(cfg)
    }

    /// Where the lab's daemon appends its violation events.
    pub fn events_file(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Packets of `device` dropped for any reason.
    pub fn dropped(&self, device: u32) -> u64 {
        iotfence_common::reason::REASONS
            .iter()
            .map(|r| self.counter(device, iotfence_common::Verdict::Dropped, *r))
            .sum()
    }

    /// The learned-map entry of (device, address), read from the pins.
    pub fn learned(
        &self,
        device: u32,
        addr: std::net::IpAddr,
    ) -> Option<iotfence_common::LearnedRules> {
        self.learned_map()
            .get(&iotfence::dns::table::key(device, addr), 0)
            .ok()
    }

    fn learned_map(
        &self,
    ) -> aya::maps::HashMap<
        aya::maps::MapData,
        iotfence_common::LearnedKey,
        iotfence_common::LearnedRules,
    > {
        iotfence::kernel::pins::open_pinned(
            &self.pins.path,
            iotfence_common::consts::map_names::LEARNED,
        )
        .expect("opening the pinned learned map")
    }

    /// Learned-map entries of `device`.
    pub fn learned_count(&self, device: u32) -> usize {
        self.learned_map()
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.device == device)
            .count()
    }

    /// Starts `iotfence run` in the router namespace and waits until ready.
    pub fn start_daemon(&mut self, config: &Path) -> anyhow::Result<()> {
        let d = Daemon::start(&self.router, config)?;
        self.daemon = Some(d);
        Ok(())
    }

    /// A global (not per-device) kernel counter, summed over CPUs.
    pub fn global(&self, index: u32) -> u64 {
        iotfence::kernel::counters::pinned_global(&self.pins.path, index)
            .expect("reading pinned globals")
    }

    pub fn counter(
        &self,
        device: u32,
        verdict: iotfence_common::Verdict,
        reason: iotfence_common::Reason,
    ) -> u64 {
        iotfence::kernel::counters::pinned_counter(&self.pins.path, device, verdict, reason)
            .expect("reading pinned counters")
            .packets
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
        // `dir` (a TempDir) goes after this, with the daemon stopped.
    }
}

/// The daemon binary built next to the test executable (target/<profile>/).
pub fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IOTFENCE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("iotfence");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo xtask test` does)",
        bin.display()
    );
    bin
}

/// A running `iotfence run`, its output collected line by line.
pub struct Daemon {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// The threads reading stderr and stdout (joined by `wait`).
    readers: Vec<thread::JoinHandle<()>>,
}

fn collect(
    r: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
    echo: bool,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[iotfence] {line}");
            }
            sink.lock().unwrap().push(line);
        }
    })
}

impl Daemon {
    pub fn spawn(router: &Netns, config: &Path) -> anyhow::Result<Self> {
        let ns = File::open(router.path())?;
        let mut cmd = Command::new(daemon_binary());
        cmd.args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("NO_COLOR", "1");
        // Enter only the network namespace: `ip netns exec` would also
        // remount /sys and hide the bpffs holding the pins.
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the test process, even when that is killed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                enter_ns(&ns)
            });
        }
        let mut child = cmd.spawn().context("starting iotfence")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(
                child.stderr.take().unwrap(),
                stderr.clone(),
                std::env::var_os("IOTFENCE_LAB_ECHO").is_some(),
            ),
            collect(child.stdout.take().unwrap(), stdout.clone(), false),
        ];
        Ok(Self {
            child,
            stderr,
            stdout,
            readers,
        })
    }

    pub fn start(router: &Netns, config: &Path) -> anyhow::Result<Self> {
        let mut d = Self::spawn(router, config)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if d.stderr.lock().unwrap().iter().any(|l| l.contains("ready")) {
                return Ok(d);
            }
            if let Some(status) = d.child.try_wait()? {
                bail!(
                    "iotfence exited ({status}) before ready:\n{}",
                    d.stderr.lock().unwrap().join("\n")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        d.kill();
        bail!(
            "iotfence not ready within 20 s:\n{}",
            d.stderr.lock().unwrap().join("\n")
        )
    }

    /// Waits for the process to exit and for everything it wrote to be
    /// read (the readers may still hold its last lines when it exits).
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ok(status)
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Process id, for CPU accounting.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGHUP and waits (bounded) for the daemon's verdict on the
    /// policy: true when it was reloaded, false when it was rejected.
    pub fn reload(&self) -> anyhow::Result<bool> {
        Ok(self.reload_polled(Duration::from_millis(10))?.0)
    }

    /// Like `reload`, reading the log every `poll`; also returns the time
    /// from the signal to the verdict (within `poll`).
    pub fn reload_polled(&self, poll: Duration) -> anyhow::Result<(bool, Duration)> {
        let seen = |s: &str| {
            self.stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(s))
                .count()
        };
        let (ok, bad) = (seen("policy reloaded"), seen("reload rejected"));
        let t0 = Instant::now();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
        let deadline = t0 + Duration::from_secs(10);
        while Instant::now() < deadline {
            if seen("policy reloaded") > ok {
                return Ok((true, t0.elapsed()));
            }
            if seen("reload rejected") > bad {
                return Ok((false, t0.elapsed()));
            }
            thread::sleep(poll);
        }
        bail!("no reload verdict within 10 s:\n{}", self.log())
    }

    /// SIGTERM, then the exit status (bounded wait).
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Ok(s);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!("iotfence did not stop within 10 s of SIGTERM")
    }
}

/// A UDP server echoing every datagram to its sender, until dropped. It
/// answers from the address the datagram was sent to (IPV6_PKTINFO, which
/// Linux also reports for IPv4 on a dual-stack socket): the internet
/// namespace owns whole prefixes (`ANY_V4`, `ANY_V6`), and a reply from its
/// primary address would not reach a connected client socket.
pub struct UdpEcho {
    stop: Arc<AtomicBool>,
}

impl UdpEcho {
    /// Listens on every address of the namespace (IPv4 and IPv6).
    pub fn start_any(ns: &Netns, port: u16) -> anyhow::Result<Self> {
        let stop = serve_in(
            ns,
            move || udp_echo_socket(port),
            |s, flag| {
                let mut buf = [0u8; 2048];
                while !flag.load(Ordering::Relaxed) {
                    if let Some((n, peer, local)) = udp_recv_to(&s, &mut buf) {
                        let _ = udp_send_from(&s, &buf[..n], &peer, local);
                    }
                }
            },
        )?;
        Ok(Self { stop })
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// [::]:port, reporting each datagram's destination and free to answer from
/// addresses the namespace only routes as local (IPv6 needs FREEBIND there).
fn udp_echo_socket(port: u16) -> std::io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    let on: libc::c_int = 1;
    for opt in [libc::IPV6_RECVPKTINFO, libc::IPV6_FREEBIND] {
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_IPV6,
                opt,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(s)
}

/// One datagram: its length, its sender and the address it was sent to
/// (IPv4 as mapped IPv6); `None` on timeout.
fn udp_recv_to(
    s: &std::net::UdpSocket,
    buf: &mut [u8],
) -> Option<(usize, libc::sockaddr_in6, libc::in6_addr)> {
    let mut peer: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 32];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut peer as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        let (level, kind) = unsafe { ((*c).cmsg_level, (*c).cmsg_type) };
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            let info: libc::in6_pktinfo =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast()) };
            return Some((n as usize, peer, info.ipi6_addr));
        }
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }
    None
}

/// Sends `data` to `peer` from the local address `from`.
fn udp_send_from(
    s: &std::net::UdpSocket,
    data: &[u8],
    peer: &libc::sockaddr_in6,
    from: libc::in6_addr,
) -> std::io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (peer as *const libc::sockaddr_in6 as *mut libc::sockaddr_in6).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    let info_len = std::mem::size_of::<libc::in6_pktinfo>() as u32;
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(info_len) } as _;
    let n = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::IPPROTO_IPV6;
        (*c).cmsg_type = libc::IPV6_PKTINFO;
        (*c).cmsg_len = libc::CMSG_LEN(info_len) as _;
        std::ptr::write_unaligned(
            libc::CMSG_DATA(c).cast(),
            libc::in6_pktinfo {
                ipi6_addr: from,
                ipi6_ifindex: 0,
            },
        );
        libc::sendmsg(s.as_raw_fd(), &msg, 0)
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
