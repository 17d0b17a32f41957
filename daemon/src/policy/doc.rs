//! The policy language (YAML): profiles of allowed destinations, inbound
//! allowances, devices, the default profile for unknown devices, site
//! variables and includes. A policy may span files (`include:`, or a
//! directory of files); every file has this one shape. Parsing keeps every
//! value's location so validation can point at it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use iotfence_common::Mode;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{
    de::{self, Visitor},
    Deserialize,
};
use serde_saphyr::Spanned;

/// An iotfence policy file: profiles built from vendors' firewall
/// requirements, the devices that use them, and site variables.
/// See README.md, "Policy language".
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "iotfence policy")]
pub struct PolicyDoc {
    /// Further policy files or directories, relative to this file.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub include: Vec<Spanned<String>>,
    /// Site variables: name -> addresses, CIDRs or domain names; profiles
    /// use them as `$name` in `to:` / `from:`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, OneOrMany<String>>")]
    pub vars: BTreeMap<String, Spanned<OneOrMany<String>>>,
    /// Variables the profiles of this file need the site to set.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RequireDoc>")]
    pub requires: BTreeMap<String, Spanned<RequireDoc>>,
    /// Profile for devices no entry matches; the built-in `default` (DHCP and
    /// DNS to the configured resolvers) when unset.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub default_profile: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ProfileDoc>")]
    pub profiles: BTreeMap<String, Spanned<ProfileDoc>>,
    #[serde(default)]
    #[schemars(with = "Vec<DeviceDoc>")]
    pub devices: Vec<Spanned<DeviceDoc>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    #[serde(default)]
    pub description: Option<String>,
    /// The vendor document (and version) the profile is built from.
    #[serde(default)]
    pub source: Option<String>,
    /// `enforce` (default) or `audit`.
    #[serde(default)]
    #[schemars(with = "Option<ModeName>")]
    pub mode: Option<Spanned<String>>,
    /// Built-in infrastructure blocks: `dhcp`, `dns`, `ntp`.
    #[serde(default, rename = "use")]
    #[schemars(with = "Vec<Block>")]
    pub uses: Vec<Spanned<String>>,
    /// What the vendor requires that addresses and ports cannot express
    /// (URL paths, certificate pinning, ...), stated for the admin.
    #[serde(default)]
    pub limitations: Vec<String>,
    #[serde(default)]
    #[schemars(with = "Vec<RuleDoc>")]
    pub egress: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    #[schemars(with = "Vec<RuleDoc>")]
    pub inbound: Vec<Spanned<RuleDoc>>,
}

/// One rule: destinations (`to`, egress) or remote sources (`from`,
/// inbound) with a protocol and its ports or ICMP types.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Egress: destination addresses or CIDRs.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<String>>")]
    pub to: Option<Spanned<OneOrMany<String>>>,
    /// Inbound: remote sources allowed to open flows to the device.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<String>>")]
    pub from: Option<Spanned<OneOrMany<String>>>,
    /// tcp, udp, icmp, icmpv6, any, or an IP protocol number.
    #[schemars(with = "ProtoSpec")]
    pub proto: Spanned<ProtoSpec>,
    /// For tcp/udp: ports and ranges ("8000-8100"). Omitted: every port.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<PortSpec>>")]
    pub ports: Option<Spanned<OneOrMany<PortSpec>>>,
    /// For icmp/icmpv6: message types. Omitted: every type.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<PortSpec>>")]
    pub types: Option<Spanned<OneOrMany<PortSpec>>>,
    /// Where in the vendor document the rule comes from.
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Deserialized by hand (as are `PortSpec` and `OneOrMany`): serde's
/// untagged enums buffer every value before trying each variant, which cost
/// a quarter of the parse of a 10,000-rule policy.
#[derive(Debug)]
pub enum ProtoSpec {
    Number(u64),
    Name(String),
}

#[derive(Debug)]
pub enum PortSpec {
    Number(i64),
    Range(String),
}

impl<'de> Deserialize<'de> for ProtoSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProtoSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a protocol name or number")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<ProtoSpec, E> {
                Ok(ProtoSpec::Number(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ProtoSpec, E> {
                u64::try_from(n)
                    .map(ProtoSpec::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ProtoSpec, E> {
                Ok(ProtoSpec::Name(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a range `low-high`")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortSpec, E> {
                Ok(PortSpec::Number(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortSpec, E> {
                i64::try_from(n)
                    .map(PortSpec::Number)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(n), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortSpec, E> {
                Ok(PortSpec::Range(s.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceDoc {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mac: Option<Spanned<String>>,
    /// Addresses or CIDRs the device sends from.
    #[serde(default)]
    #[schemars(with = "Option<OneOrMany<String>>")]
    pub ip: Option<Spanned<OneOrMany<String>>>,
    #[schemars(with = "String")]
    pub profile: Spanned<String>,
    /// Overrides the profile's mode for this device only.
    #[serde(default)]
    #[schemars(with = "Option<ModeName>")]
    pub mode: Option<Spanned<String>>,
    /// With both `mac` and `ip`: whether a packet must match both to be
    /// this device (`mac-and-ip`, the default) or either (`mac-or-ip`).
    #[serde(default, rename = "match")]
    #[schemars(with = "Option<MatchMode>")]
    pub matching: Option<Spanned<String>>,
    /// Extra egress rules for this device only, on top of its profile.
    #[serde(default)]
    #[schemars(with = "Vec<RuleDoc>")]
    pub egress: Vec<Spanned<RuleDoc>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A site variable a vendor file needs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireDoc {
    #[serde(default)]
    pub description: Option<String>,
    /// `networks`: addresses and CIDRs only; `hosts` (default): domain
    /// names too.
    #[serde(default)]
    #[schemars(with = "Option<RequireKind>")]
    pub kind: Option<Spanned<String>>,
}

// Schema-only types: what the compiler accepts for fields it reads as
// located strings, so editors can complete and check them.

/// Enforcement mode of a profile or device: the names of `Mode`, the code
/// the kernel reads.
struct ModeName;

impl JsonSchema for ModeName {
    fn schema_name() -> Cow<'static, str> {
        "Mode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let help = |m: Mode| match m {
            Mode::Enforce => "Drop what the profile does not allow (default).",
            Mode::Audit => "Pass everything, count and report what `enforce` would drop.",
        };
        let one_of: Vec<serde_json::Value> = Mode::ALL
            .iter()
            .map(|&m| serde_json::json!({ "description": help(m), "type": "string", "const": m.name() }))
            .collect();
        json_schema!({
            "description": "Enforcement mode of a profile or device.",
            "oneOf": one_of
        })
    }
}

/// How a device listed with both `mac` and `ip` is recognized.
#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum MatchMode {
    /// Only packets from its MAC *and* one of its addresses (default): a
    /// host that takes its address, or its MAC sending from elsewhere, is
    /// an unknown device.
    MacAndIp,
    /// Its MAC from any address, and its addresses from any MAC.
    MacOrIp,
}

/// Built-in infrastructure blocks a profile can `use`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum Block {
    /// DHCP to the router (UDP 67/68, DHCPv6 546/547).
    Dhcp,
    /// DNS to the configured resolvers; answers for the profile's names are learned.
    Dns,
    /// NTP (UDP 123) to the site variable `$ntp_servers`.
    Ntp,
}

/// What a required site variable may hold.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum RequireKind {
    /// Addresses and CIDRs only.
    Networks,
    /// Addresses, CIDRs and domain names (default).
    Hosts,
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<T>();
        json_schema!({
            "description": "A value or a list of values.",
            "anyOf": [one, { "type": "array", "items": one }]
        })
    }
}

impl JsonSchema for ProtoSpec {
    fn schema_name() -> Cow<'static, str> {
        "Protocol".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A protocol name, or an IP protocol number.",
            "anyOf": [
                { "enum": ["tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "any"] },
                { "type": "integer", "minimum": 0, "maximum": 254 }
            ]
        })
    }
}

impl JsonSchema for PortSpec {
    fn schema_name() -> Cow<'static, str> {
        "Port".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A port (or ICMP type), or an inclusive range `low-high`.",
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": 65535 },
                { "type": "string", "pattern": "^ *[0-9]+ *(- *[0-9]+ *)?$" }
            ]
        })
    }
}

/// The JSON Schema of a policy file, generated from the types above.
pub fn schema() -> String {
    let mut s = serde_json::to_string_pretty(&schemars::schema_for!(PolicyDoc))
        .expect("a schema serializes");
    s.push('\n');
    s
}
