//! The policy language (YAML): profiles of allowed destinations, inbound
//! allowances, devices, the default profile for unknown devices, site
//! variables and includes. A policy may span files (`include:`, or a
//! directory of files); every file has this one shape. Parsing keeps every
//! value's location so validation can point at it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Further policy files or directories, relative to this file.
    #[serde(default)]
    pub include: Vec<Spanned<String>>,
    /// Site variables: name -> addresses, CIDRs or domain names; profiles
    /// use them as `$name` in `to:` / `from:`.
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<OneOrMany<String>>>,
    /// Variables the profiles of this file need the site to set.
    #[serde(default)]
    pub requires: BTreeMap<String, Spanned<RequireDoc>>,
    /// Profile for devices no entry matches; the built-in `default` (DHCP and
    /// DNS to the configured resolvers) when unset.
    #[serde(default)]
    pub default_profile: Option<Spanned<String>>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Spanned<ProfileDoc>>,
    #[serde(default)]
    pub devices: Vec<Spanned<DeviceDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    #[serde(default)]
    pub description: Option<String>,
    /// The vendor document (and version) the profile is built from.
    #[serde(default)]
    pub source: Option<String>,
    /// `enforce` (default) or `audit`.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// Built-in infrastructure blocks: `dhcp`, `dns`, `ntp`.
    #[serde(default, rename = "use")]
    pub uses: Vec<Spanned<String>>,
    /// What the vendor requires that addresses and ports cannot express
    /// (URL paths, certificate pinning, ...), stated for the admin.
    #[serde(default)]
    pub limitations: Vec<String>,
    #[serde(default)]
    pub egress: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    pub inbound: Vec<Spanned<RuleDoc>>,
}

/// One rule: destinations (`to`, egress) or remote sources (`from`,
/// inbound) with a protocol and its ports or ICMP types.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Egress: destination addresses or CIDRs.
    #[serde(default)]
    pub to: Option<Spanned<OneOrMany<String>>>,
    /// Inbound: remote sources allowed to open flows to the device.
    #[serde(default)]
    pub from: Option<Spanned<OneOrMany<String>>>,
    /// tcp, udp, icmp, icmpv6, any, or an IP protocol number.
    pub proto: Spanned<ProtoSpec>,
    /// For tcp/udp: ports and ranges ("8000-8100"). Omitted: every port.
    #[serde(default)]
    pub ports: Option<Spanned<OneOrMany<PortSpec>>>,
    /// For icmp/icmpv6: message types. Omitted: every type.
    #[serde(default)]
    pub types: Option<Spanned<OneOrMany<PortSpec>>>,
    /// Where in the vendor document the rule comes from.
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ProtoSpec {
    Number(u64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    Number(i64),
    Range(String),
}

/// A scalar or a list of them. Deserialized by hand rather than as an
/// untagged enum: untagged buffering would strip the locations of list items.
#[derive(Debug)]
pub enum OneOrMany<T> {
    /// Located by the enclosing `Spanned`.
    One(T),
    Many(Vec<Spanned<T>>),
}

impl<T> OneOrMany<T> {
    /// Every item with its location (`outer` for a single scalar).
    pub fn located(&self, outer: serde_saphyr::Location) -> Vec<(serde_saphyr::Location, &T)> {
        match self {
            OneOrMany::One(t) => vec![(outer, t)],
            OneOrMany::Many(v) => v.iter().map(|s| (s.referenced, &s.value)).collect(),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{value, IntoDeserializer, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(OneOrMany::Many(v))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                T::deserialize(s.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
                T::deserialize(value::I64Deserializer::new(n)).map(OneOrMany::One)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
                T::deserialize(value::U64Deserializer::new(n)).map(OneOrMany::One)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceDoc {
    pub name: Spanned<String>,
    #[serde(default)]
    pub mac: Option<Spanned<String>>,
    /// Addresses or CIDRs the device sends from.
    #[serde(default)]
    pub ip: Option<Spanned<OneOrMany<String>>>,
    pub profile: Spanned<String>,
    /// Overrides the profile's mode for this device only.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    /// Extra egress rules for this device only, on top of its profile.
    #[serde(default)]
    pub egress: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A site variable a vendor file needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequireDoc {
    #[serde(default)]
    pub description: Option<String>,
    /// `networks`: addresses and CIDRs only; `hosts` (default): domain
    /// names too.
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
}
