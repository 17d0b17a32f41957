//! The client side of `/learn` (for `iotfence learn`): one HTTP/1.1
//! request per call, with the control token.

use std::{
    io::{Read, Write},
    net::SocketAddr,
    time::Duration,
};

use super::report::Report;

/// Why a call failed: the daemon is not there, or it said no.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no iotfence daemon answers on {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Malformed(String),
}

pub struct Daemon {
    pub addr: SocketAddr,
    pub token: String,
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

impl Daemon {
    fn call(&self, method: &str, query: &str) -> Result<Report, CallError> {
        let addr = self.addr;
        let unreachable = |source| CallError::Unreachable { addr, source };
        let timeout = Duration::from_secs(10);
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(unreachable)?;
        s.set_read_timeout(Some(timeout)).map_err(unreachable)?;
        write!(
            s,
            "{method} /learn?{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.token
        )
        .map_err(unreachable)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(unreachable)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| CallError::Malformed(format!("{addr}: a malformed HTTP response")))?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status != 200 {
            return Err(CallError::Refused {
                status,
                message: body.trim().to_string(),
            });
        }
        serde_json::from_str(body)
            .map_err(|e| CallError::Malformed(format!("{addr}: the learning report: {e}")))
    }

    /// Starts learning `device` for `seconds`.
    pub fn start(&self, device: &str, seconds: u64) -> Result<Report, CallError> {
        self.call(
            "POST",
            &format!("device={}&seconds={seconds}", encode(device)),
        )
    }

    /// What the session saw so far.
    pub fn progress(&self, device: &str) -> Result<Report, CallError> {
        self.call("GET", &format!("device={}", encode(device)))
    }

    /// Ends the session (if it still runs) and fetches its report.
    pub fn stop(&self, device: &str) -> Result<Report, CallError> {
        self.call("DELETE", &format!("device={}", encode(device)))
    }
}
