//! Reading what the daemon shows: its HTTP endpoint from inside the router
//! namespace, the Prometheus text format, Debian's promtool, and a real
//! Prometheus server scraping the daemon.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::lab::{enter_ns, Netns};

/// The daemon's default metrics address (inside the router namespace).
pub const METRICS: &str = "127.0.0.1:9742";

/// One GET over HTTP/1.1 from inside `ns`: (status code, body).
pub fn http_get(ns: &Netns, addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr: SocketAddr = addr.parse()?;
    let path = path.to_string();
    ns.run(move || -> anyhow::Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8(raw)?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no HTTP status")?;
        // HTTP/1.0: no chunked bodies (Prometheus chunks large answers to
        // 1.1 clients); the server closes after the body.
        Ok((code, body.to_string()))
    })?
}

/// A sample of the text exposition format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the samples of a scrape (comments skipped). Label values in the
/// daemon's output never contain `"` or `,`, which keeps this simple; a
/// line it cannot parse is an error, not skipped.
pub fn parse(text: &str) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("no value: {line}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().with_context(|| format!("bad value: {line}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((n, rest)) => {
                let rest = rest.strip_suffix('}').context("unclosed labels")?;
                let mut labels = BTreeMap::new();
                for pair in rest.split(',').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').context("bad label")?;
                    labels.insert(k.to_string(), v.trim_matches('"').to_string());
                }
                (n.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    Ok(out)
}

/// The value of the one sample of `name` whose labels include `want`.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// `promtool check metrics` on a scrape: its output when it finds problems.
pub fn promtool_check(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool (Debian package prometheus)")?;
    child.stdin.take().unwrap().write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Debian's Prometheus server inside `ns`, scraping the daemon every
/// second; killed (with the test process, too) and its data removed on
/// drop.
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub listen: String,
}

impl Prometheus {
    pub fn start(ns: &Netns, dir: &Path, target: &str, listen: &str) -> anyhow::Result<Self> {
        Self::start_with_rules(ns, dir, target, listen, &[])
    }

    /// `start`, loading these rule files (absolute paths).
    pub fn start_with_rules(
        ns: &Netns,
        dir: &Path,
        target: &str,
        listen: &str,
        rules: &[PathBuf],
    ) -> anyhow::Result<Self> {
        let dir = dir.join("prometheus");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("prometheus.yml");
        let mut text = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: iotfence\n    static_configs:\n      - targets: ['{target}']\n"
        );
        if !rules.is_empty() {
            text += "rule_files:\n";
            for r in rules {
                text += &format!("  - '{}'\n", r.display());
            }
        }
        std::fs::write(&config, text)?;
        let ns_file = std::fs::File::open(ns.path())?;
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                enter_ns(&ns_file)
            });
        }
        let child = cmd.spawn().context("starting prometheus")?;
        let p = Self {
            child,
            dir,
            listen: listen.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(ns, listen, "/-/ready") {
                return Ok(p);
            }
            if Instant::now() > deadline {
                bail!("prometheus not ready on {listen} after 30 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant query through the HTTP API: the `data.result` array.
    pub fn query(&self, ns: &Netns, expr: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let path = format!(
            "/api/v1/query?query={}",
            iotfence::learn::client::encode(expr)
        );
        let (code, body) = http_get(ns, &self.listen, &path)?;
        let v: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("query {expr}: HTTP {code}: {body}"))?;
        if v["status"] != "success" {
            bail!("query {expr}: {}", v["error"]);
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
