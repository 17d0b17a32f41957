//! The configuration file's YAML shape, with spans for located errors;
//! `parse` turns it into a `Config`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigDoc {
    pub(super) interfaces: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) vlans: BTreeMap<String, Spanned<Vec<Spanned<u32>>>>,
    #[serde(default)]
    pub(super) attach: Option<Spanned<String>>,
    pub(super) policy: Spanned<String>,
    #[serde(default)]
    pub(super) resolvers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) dhcp_servers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) pin_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) flow_idle_seconds: FlowIdleDoc,
    #[serde(default)]
    pub(super) events: EventsDoc,
    #[serde(default)]
    pub(super) state_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_devices: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) dns: DnsDoc,
    #[serde(default)]
    pub(super) metrics: MetricsDoc,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsDoc {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DnsDoc {
    pub(super) min_ttl_seconds: Option<Spanned<u64>>,
    pub(super) max_ttl_seconds: Option<Spanned<u64>>,
    pub(super) grace_seconds: Option<Spanned<u64>>,
    pub(super) max_addresses_per_name: Option<Spanned<u64>>,
    pub(super) max_entries_per_device: Option<Spanned<u64>>,
    pub(super) max_entries: Option<Spanned<u64>>,
    pub(super) max_pending_queries_per_device: Option<Spanned<u64>>,
    pub(super) queries_per_second: Option<Spanned<u64>>,
    pub(super) query_burst: Option<Spanned<u64>>,
    pub(super) fail_open: Option<bool>,
    pub(super) reinject_mark: Option<Spanned<u32>>,
    pub(super) redirect: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FlowIdleDoc {
    pub(super) tcp: Option<Spanned<u64>>,
    pub(super) udp: Option<Spanned<u64>>,
    pub(super) icmp: Option<Spanned<u64>>,
    pub(super) other: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsDoc {
    pub(super) per_second: Option<Spanned<f64>>,
    pub(super) burst: Option<Spanned<u32>>,
    /// Also append every event (JSON lines) to this file.
    pub(super) file: Option<Spanned<String>>,
}
