//! The serde shape of a MUD file (RFC 8520, with RFC 8519's ACLs and the
//! `ietf-acldns` names), as far as `mud import` reads and `mud export`
//! writes it. Members this shape does not name are kept in `rest` maps, so
//! the importer can state each as a limitation instead of dropping it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unknown members of an object, by name.
pub type Rest = BTreeMap<String, Value>;

#[derive(Debug, Deserialize, Serialize)]
pub struct MudFile {
    #[serde(rename = "ietf-mud:mud")]
    pub mud: Mud,
    #[serde(
        rename = "ietf-access-control-list:acls",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub acls: Option<Acls>,
    /// The name drafts before RFC 8519 used (and generators made from
    /// them, e.g. UNSW's MUDgee, still write): read as `acls`.
    #[serde(
        rename = "ietf-access-control-list:access-lists",
        default,
        skip_serializing
    )]
    pub draft_acls: Option<Acls>,
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Mud {
    pub mud_version: u8,
    pub mud_url: String,
    pub last_update: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mud_signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_validity: Option<u8>,
    pub is_supported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systeminfo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfg_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_rev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_rev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_device_policy: Option<Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_device_policy: Option<Policy>,
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Policy {
    pub access_lists: AccessLists,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AccessLists {
    #[serde(default)]
    pub access_list: Vec<AclRef>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct AclRef {
    pub name: String,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Acls {
    #[serde(default)]
    pub acl: Vec<Acl>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Acl {
    pub name: String,
    /// `ipv4-acl-type`, `ipv6-acl-type`, ... (optionally module-prefixed).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub acl_type: Option<String>,
    #[serde(default)]
    pub aces: Aces,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Aces {
    #[serde(default)]
    pub ace: Vec<Ace>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct Ace {
    pub name: String,
    #[serde(default)]
    pub matches: Matches,
    #[serde(default)]
    pub actions: Actions,
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Matches {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<IpMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<IpMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<L4Match>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<L4Match>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    #[serde(
        rename = "ietf-mud:mud",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mud: Option<MudMatch>,
    /// `eth`, `egress-interface`, extensions' matches, ...
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

/// The `ipv4` and `ipv6` match containers (one shape: each family's
/// network leaves are named apart).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_ipv4_network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ipv4_network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_ipv6_network: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ipv6_network: Option<String>,
    #[serde(
        rename = "ietf-acldns:dst-dnsname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dst_dnsname: Option<String>,
    #[serde(
        rename = "ietf-acldns:src-dnsname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub src_dnsname: Option<String>,
    /// iotfence's extension (`extensions: [iotfence-mud]`): the dnsname
    /// names every name below it, not itself (a policy's `*.name`), which
    /// `inet:host` cannot spell.
    #[serde(
        rename = "iotfence-mud:dnsname-wildcard",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub dnsname_wildcard: bool,
    /// dscp, ecn, ttl, flags, flow-label, ...
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

/// The `tcp` and `udp` match containers.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct L4Match {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port: Option<PortMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<PortMatch>,
    #[serde(
        rename = "ietf-mud:direction-initiated",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub direction_initiated: Option<String>,
    /// flags, sequence numbers, window, options, length, ...
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

/// RFC 8519's `port-range-or-operator`: a range, or an operator and port.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PortMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct IcmpMatch {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

/// RFC 8520's match augmentation: classes of peers the MUD manager (here:
/// the site policy) turns into addresses.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MudMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(
        default,
        deserialize_with = "empty_leaf",
        skip_serializing_if = "Option::is_none"
    )]
    pub same_manufacturer: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(
        default,
        deserialize_with = "empty_leaf",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_networks: Option<Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    #[serde(
        default,
        deserialize_with = "empty_leaf",
        skip_serializing_if = "Option::is_none"
    )]
    pub my_controller: Option<Empty>,
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

/// A YANG `empty` leaf: `[null]` in RFC 7951 JSON. `null` and `true`,
/// which some generators write, are read as the same (see `empty_leaf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl Serialize for Empty {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(1))?;
        seq.serialize_element(&())?;
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Array(a) if a.len() == 1 && a[0].is_null() => Ok(Empty),
            Value::Null | Value::Bool(true) => Ok(Empty),
            other => Err(serde::de::Error::custom(format!(
                "an empty leaf is written [null], not {other}"
            ))),
        }
    }
}

/// A present empty leaf, `null` included (serde reads a bare `null` for an
/// `Option` as absent, which would drop the class).
fn empty_leaf<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Empty>, D::Error> {
    Empty::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Actions {
    /// `accept`, `drop` or `reject` (optionally module-prefixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<String>,
    #[serde(flatten, skip_serializing)]
    pub rest: Rest,
}

/// Parses a MUD file; errors carry serde_json's line and column.
pub fn parse(text: &str) -> Result<MudFile, serde_json::Error> {
    serde_json::from_str(text)
}
