//! The learned table across restarts: restored (and reconciled with the
//! kernel's map) at start, saved every few seconds and at stop.

use std::{sync::atomic::Ordering::Relaxed, time::SystemTime};

use iotfence_common::{LearnedKey, LearnedRules};

use super::Engine;
use crate::{
    clock::mono_ns,
    dns::{
        state::{self, Saved, SavedCredit},
        table::{Credit, Write},
    },
    policy::pattern::Pattern,
};

impl Engine {
    pub(super) fn restore(&mut self, trusted_ids: bool) -> anyhow::Result<()> {
        let now = mono_ns();
        let now_ms = crate::clock::unix_ms(SystemTime::now());
        let mut saved = match state::load(&self.state_file) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %self.state_file.display(), error = %format!("{e:#}"), "ignoring unreadable DNS state");
                Saved::default()
            }
        };
        let mut restored = 0;
        // No answer could have granted more than max_ttl + grace: a state
        // file claiming longer (edited, corrupt, or a clock that jumped back
        // since) is cut to that.
        let longest_ms = (self.settings.max_ttl + self.settings.grace).as_millis() as u64;
        let mut clamped = 0;
        let elapsed = saved.elapsed(now_ms, now, &state::boot_id());
        if elapsed == state::Elapsed::ClockBehind {
            tracing::warn!(
                saved_ms = saved.saved_ms,
                now_ms,
                "the wall clock is behind the last save (no real-time clock, not synced yet?): restored lifetimes count from the save, as if no time had passed"
            );
        }
        let credits = std::mem::take(&mut saved.credits);
        for c in credits {
            let left_ms = saved.left_ms(&c, now_ms, elapsed);
            if left_ms == 0 {
                continue;
            }
            if left_ms > longest_ms {
                clamped += 1;
            }
            let left_ms = left_ms.min(longest_ms);
            let Some(device) = self.policy.id_of(&c.device) else {
                continue;
            };
            let Ok(pattern) = Pattern::parse(&c.pattern) else {
                continue;
            };
            let Some(rule) = self
                .policy
                .rules(device)
                .and_then(|rs| rs.iter().find(|r| r.pattern == pattern))
            else {
                continue;
            };
            if !pattern.matches(&c.name) {
                continue;
            }
            let credit = Credit {
                name: c.name,
                pattern,
                rules: rule.rules.clone(),
                expires_ns: now.saturating_add(left_ms.saturating_mul(1_000_000)),
            };
            if self
                .table
                .credit(&self.limits, device, c.addr, credit)
                .is_ok()
            {
                restored += 1;
            }
        }
        // Entries in the kernel that the state file does not explain.
        let kernel: Vec<(LearnedKey, LearnedRules)> =
            self.learned.iter().filter_map(Result::ok).collect();
        let (mut orphans, mut distrusted) = (0, 0);
        for (k, v) in kernel {
            let addr = crate::dns::table::addr_of(&k);
            if self.policy.rules(k.device).is_none() {
                let _ = self.learned.remove(&k);
                continue;
            }
            if !self.table.entries().contains_key(&(k.device, addr)) {
                // Id 0 (unknown devices) never changes hands.
                if trusted_ids || k.device == 0 {
                    self.table.adopt_orphan(k.device, addr, v);
                    orphans += 1;
                } else {
                    // Its id may now name another device.
                    let _ = self.learned.remove(&k);
                    distrusted += 1;
                }
            }
        }
        let writes: Vec<Write> = self
            .table
            .entries()
            .iter()
            .filter_map(|((d, a), cs)| {
                crate::dns::table::value(cs).map(|v| Write::Put(crate::dns::table::key(*d, *a), v))
            })
            .collect();
        self.write(writes);
        let expired = self.table.expire(now);
        self.write(expired);
        self.stats.entries.store(self.table.len() as u64, Relaxed);
        tracing::info!(
            restored,
            clamped,
            kept_unexplained = orphans,
            dropped_unexplained = distrusted,
            "learned addresses restored"
        );
        Ok(())
    }

    pub(super) fn save(&mut self) {
        let now = mono_ns();
        let now_ms = crate::clock::unix_ms(SystemTime::now());
        let mut saved = Saved {
            version: state::VERSION,
            saved_ms: now_ms,
            boot_id: state::boot_id(),
            saved_mono_ns: now,
            credits: Vec::new(),
        };
        for ((device, addr), credits) in self.table.entries() {
            let Some((name, _)) = self.policy.devices.get(device) else {
                continue;
            };
            for c in credits.iter().filter(|c| c.expires_ns > now) {
                saved.credits.push(SavedCredit {
                    device: name.clone(),
                    addr: *addr,
                    name: c.name.clone(),
                    pattern: c.pattern.to_string(),
                    expires_ms: now_ms + (c.expires_ns - now) / 1_000_000,
                });
            }
        }
        match state::save(&self.state_file, &saved) {
            Ok(()) => self.dirty = false,
            Err(e) => {
                tracing::error!(file = %self.state_file.display(), error = %format!("{e:#}"), "saving DNS state failed")
            }
        }
    }
}
