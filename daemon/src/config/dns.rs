//! DNS learning settings (`dns:` in the configuration), their defaults
//! and bounds.

use std::time::Duration;

use serde_saphyr::Spanned;

use iotfence_common::consts::{LEARNED_ENTRIES, MAX_LEARNED_ENTRIES};

use super::doc::DnsDoc;
use crate::diag::Diags;

/// DNS learning settings (`dns:` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsSettings {
    /// A learned address lives for its TTL clamped to [min_ttl, max_ttl],
    /// plus `grace` (devices connect a little after their answer expires).
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    pub grace: Duration,
    pub max_addresses_per_name: usize,
    pub max_entries_per_device: usize,
    pub max_entries: usize,
    pub max_pending_per_device: usize,
    /// Each device's DNS query budget in the kernel (unknown devices: each
    /// source MAC): a sustained rate and a burst, in queries.
    pub queries_per_second: u64,
    pub query_burst: u64,
    /// Deliver answers unlearned while the daemon is down (default: drop).
    pub fail_open: bool,
    pub reinject_mark: u32,
    /// Queries to other resolvers (UDP/TCP 53) go to the first configured
    /// resolver of their family, answers come back rewritten.
    pub redirect: bool,
}

impl DnsSettings {
    /// How long an address with `ttl` stays allowed.
    pub fn lifetime(&self, ttl: u32) -> Duration {
        Duration::from_secs(ttl as u64).clamp(self.min_ttl, self.max_ttl) + self.grace
    }
}

pub(super) fn dns_settings(d: &mut Diags<'_>, doc: &DnsDoc) -> DnsSettings {
    let mut num = |v: &Option<Spanned<u64>>, default: u64, lo: u64, hi: u64, what: &str| match v {
        Some(s) if s.value < lo || s.value > hi => {
            d.on(s, format!("dns.{what} must be {lo} to {hi}"), None);
            default
        }
        Some(s) => s.value,
        None => default,
    };
    let min_ttl = num(&doc.min_ttl_seconds, 60, 0, 86_400, "min_ttl_seconds");
    let max_ttl = num(
        &doc.max_ttl_seconds,
        86_400,
        1,
        7 * 86_400,
        "max_ttl_seconds",
    );
    let grace = num(&doc.grace_seconds, 60, 0, 86_400, "grace_seconds");
    let per_name = num(
        &doc.max_addresses_per_name,
        64,
        1,
        65_536,
        "max_addresses_per_name",
    );
    let per_device = num(
        &doc.max_entries_per_device,
        4096,
        1,
        MAX_LEARNED_ENTRIES as u64,
        "max_entries_per_device",
    );
    let total = num(
        &doc.max_entries,
        LEARNED_ENTRIES as u64,
        1,
        MAX_LEARNED_ENTRIES as u64,
        "max_entries",
    );
    let pending = num(
        &doc.max_pending_queries_per_device,
        256,
        1,
        65_536,
        "max_pending_queries_per_device",
    );
    let queries_per_second = num(
        &doc.queries_per_second,
        20,
        1,
        100_000,
        "queries_per_second",
    );
    let query_burst = num(&doc.query_burst, 100, 1, 100_000, "query_burst");
    if min_ttl > max_ttl {
        if let Some(s) = &doc.min_ttl_seconds {
            d.on(s, "dns.min_ttl_seconds is above dns.max_ttl_seconds", None);
        }
    }
    let reinject_mark = match &doc.reinject_mark {
        Some(s) if s.value == 0 => {
            d.on(
                s,
                "dns.reinject_mark must not be 0",
                Some("pick a mark no other tool on the router uses"),
            );
            DEFAULT_REINJECT_MARK
        }
        Some(s) => s.value,
        None => DEFAULT_REINJECT_MARK,
    };
    DnsSettings {
        min_ttl: Duration::from_secs(min_ttl),
        max_ttl: Duration::from_secs(max_ttl.max(min_ttl)),
        grace: Duration::from_secs(grace),
        max_addresses_per_name: per_name as usize,
        max_entries_per_device: per_device as usize,
        max_entries: total as usize,
        max_pending_per_device: pending as usize,
        queries_per_second,
        query_burst,
        fail_open: doc.fail_open.unwrap_or(false),
        reinject_mark,
        redirect: doc.redirect.as_ref().is_some_and(|s| s.value),
    }
}

/// skb mark of re-injected DNS answers ("iotf" in ASCII, minus one bit so
/// it stays positive).
pub const DEFAULT_REINJECT_MARK: u32 = 0x696f_7466;
