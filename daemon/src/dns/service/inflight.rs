//! Queries in flight survive a crash. Every query the daemon records is
//! appended to a journal on tmpfs (beside the daemon's lock under /run),
//! which is rewritten with only the waiting ones every few seconds and read
//! back by the next daemon. Without it, a daemon killed between a device's
//! query and its answer leaves its successor an answer it must refuse as
//! unsolicited: the device gets the answer (the kernel held it in the ring)
//! but not the address. tmpfs, not the state directory: a line per query
//! would wear a router's flash.

use std::{
    fs::File,
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    path::{Path, PathBuf},
};

use iotfence_common::Mac;

use crate::dns::pending::{Pending, Querier, QueryKey};

pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    /// Lines appended since the last rewrite.
    appended: usize,
}

fn line(key: &QueryKey, name: &str, from: Querier, deadline_ns: u64) -> String {
    format!(
        "{deadline_ns} {} {} {} {} {} {} {name}\n",
        from.device,
        Mac(from.mac),
        key.client,
        key.port,
        key.resolver,
        key.id
    )
}

fn parse(l: &str) -> Option<(QueryKey, String, Querier, u64)> {
    let mut f = l.splitn(8, ' ');
    let deadline_ns = f.next()?.parse().ok()?;
    let device = f.next()?.parse().ok()?;
    let mac: Mac = f.next()?.parse().ok()?;
    let client: IpAddr = f.next()?.parse().ok()?;
    let port = f.next()?.parse().ok()?;
    let resolver: IpAddr = f.next()?.parse().ok()?;
    let id = f.next()?.parse().ok()?;
    let name = f.next()?.trim_end().to_string();
    if name.is_empty() {
        return None;
    }
    let key = QueryKey {
        client,
        port,
        resolver,
        id,
    };
    Some((key, name, Querier { device, mac: mac.0 }, deadline_ns))
}

impl Journal {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            appended: 0,
        }
    }

    /// Records the predecessor's queries still waiting at `now_ns` into
    /// `pending` (their deadlines kept); how many. A missing or garbled
    /// journal restores nothing: answers to those queries go unlearned.
    pub fn restore(&self, pending: &mut Pending, now_ns: u64) -> usize {
        let Ok(f) = File::open(&self.path) else {
            return 0;
        };
        let lifetime = pending.lifetime_ns();
        let mut n = 0;
        for l in BufReader::new(f).lines().map_while(Result::ok) {
            let Some((key, name, from, deadline_ns)) = parse(&l) else {
                continue;
            };
            if deadline_ns <= now_ns {
                continue;
            }
            // Recorded as of its own time, so its deadline stays.
            if pending.record_from(key, name, from, deadline_ns.saturating_sub(lifetime)) {
                n += 1;
            }
        }
        n
    }

    /// Appends one recorded query.
    pub fn append(&mut self, key: &QueryKey, name: &str, from: Querier, deadline_ns: u64) {
        if self.file.is_none() {
            match crate::private::append(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), path = %self.path.display(), "opening the journal of queries in flight: a crash now loses their answers' learning");
                    return;
                }
            }
        }
        let l = line(key, name, from, deadline_ns);
        if let Some(f) = &mut self.file {
            if f.write_all(l.as_bytes()).is_err() {
                self.file = None;
            } else {
                self.appended += 1;
            }
        }
    }

    /// Starts the journal for `pending` (after `restore`): rewritten with
    /// what it waits for, and held open for appends from now on (one
    /// descriptor for the daemon's life, not one that comes and goes).
    pub fn open(&mut self, pending: &Pending) {
        self.appended = 1;
        self.compact(pending);
    }

    /// Rewrites the journal with only the queries `pending` still waits
    /// for, in place through the open descriptor (no second file: the
    /// daemon's descriptors stay constant). One `write` after the
    /// truncation; a crash between the two loses the journal, and with it
    /// the learning of those answers, never more.
    pub fn compact(&mut self, pending: &Pending) {
        if self.appended == 0 {
            return;
        }
        self.appended = 0;
        let text: String = pending
            .waiting()
            .map(|(k, w, from)| line(k, &w.name, from, w.deadline_ns))
            .collect();
        if self.file.is_none() {
            self.file = crate::private::append(&self.path).ok();
        }
        let Some(f) = &mut self.file else { return };
        // O_APPEND: after the truncation, the write lands at offset 0.
        if let Err(e) = f.set_len(0).and_then(|()| f.write_all(text.as_bytes())) {
            tracing::warn!(error = %e, path = %self.path.display(), "rewriting the journal of queries in flight");
            self.file = None;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> QueryKey {
        QueryKey {
            client: "192.0.2.10".parse().unwrap(),
            port,
            resolver: "192.0.2.1".parse().unwrap(),
            id: 0x1234,
        }
    }

    #[test]
    fn waiting_queries_outlive_the_daemon_that_read_them() {
        let dir = std::env::temp_dir().join(format!("iotfence-inflight-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("q.pending");
        let from = Querier {
            device: 3,
            mac: [2, 0, 0x5e, 0x10, 0, 1],
        };
        let lifetime = 1_000;
        let mut old = Pending::new(100, 10, lifetime);
        let mut j = Journal::new(path.clone());
        for (port, now) in [(1, 0), (2, 500), (3, 900)] {
            assert!(old.record_from(key(port), format!("n{port}.vendor.example"), from, now));
            j.append(
                &key(port),
                &format!("n{port}.vendor.example"),
                from,
                now + lifetime,
            );
        }
        // Answered before the crash: gone from the journal once rewritten.
        old.take(&key(2), 600).unwrap();
        j.compact(&old);
        j.append(&key(4), "late.vendor.example", from, 950 + lifetime);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"garbage line\n")
            .unwrap();

        // The successor, at 1,200: port 1's query has expired (deadline 1,000).
        let mut new = Pending::new(100, 10, lifetime);
        assert_eq!(Journal::new(path.clone()).restore(&mut new, 1_200), 2);
        let w = new.take(&key(3), 1_800).expect("still waiting");
        assert_eq!(w.name, "n3.vendor.example");
        assert_eq!(w.device, 3);
        assert!(new.take(&key(3), 1_800).is_none());
        assert!(new.take(&key(4), 1_949).is_some(), "deadline kept: 1,950");
        assert!(new.take(&key(1), 1_200).is_none(), "expired");
        assert!(new.take(&key(2), 1_200).is_none(), "answered before");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
