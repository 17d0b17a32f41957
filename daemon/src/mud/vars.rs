//! MUD's classes of peers (RFC 8520 section 8: `local-networks`,
//! `same-manufacturer`, `manufacturer`, `model`, `controller`,
//! `my-controller`) as site variables: the MUD manager's job of turning a
//! class into addresses is the site policy's `vars:` here. Import names a
//! variable after its class and quotes the class's value in backticks in
//! the variable's description; export reads the class back from the name
//! and that quote, so import -> export -> import keeps every variable.

/// The controllers RFC 8520 registers (`urn:ietf:params:mud:dns`,
/// `urn:ietf:params:mud:ntp`): the site's resolvers and time servers,
/// which the policy's `use: [dns]` and `use: [ntp]` blocks are.
pub const DNS_URN: &str = "urn:ietf:params:mud:dns";
pub const NTP_URN: &str = "urn:ietf:params:mud:ntp";
/// Not registered, but what the UNSW MUD generator (MUDgee) writes for the
/// router; seen as DHCP's server.
pub const GATEWAY_URN: &str = "urn:ietf:params:mud:gateway";

/// The variable the `ntp` block sends to (`policy::compile::NTP_VAR`).
pub const NTP_VAR: &str = crate::policy::compile::NTP_VAR;

pub const LOCAL_NETWORKS: &str = "mud_local_networks";
const SAME_MFG: &str = "mud_same_manufacturer_";
const MFG: &str = "mud_manufacturer_";
const MODEL: &str = "mud_model_";
const CONTROLLER: &str = "mud_controller_";
const MY_CONTROLLER: &str = "_my_controller";

/// A MUD class of peers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    LocalNetworks,
    SameManufacturer,
    Manufacturer(String),
    Model(String),
    Controller(String),
    MyController,
}

impl Class {
    /// How the class is written in a MUD file, for messages.
    pub fn describe(&self) -> String {
        match self {
            Class::LocalNetworks => "local-networks".into(),
            Class::SameManufacturer => "same-manufacturer".into(),
            Class::Manufacturer(m) => format!("manufacturer {m}"),
            Class::Model(m) => format!("model {m}"),
            Class::Controller(c) => format!("controller {c}"),
            Class::MyController => "my-controller".into(),
        }
    }
}

/// Lower-case letters, digits and `_`: a variable name from free text.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let mut out = out.trim_end_matches('_').to_string();
    out.truncate(60);
    out
}

/// The authority (host) of a URL: what `same-manufacturer` compares.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    host.rsplit_once('@').map_or(host, |(_, h)| h)
}

/// The site variable standing for `class` in the profile `profile` of the
/// MUD file at `mud_url`, and its description.
pub fn to_var(class: &Class, profile: &str, mud_url: &str) -> (String, String) {
    match class {
        Class::LocalNetworks => (
            LOCAL_NETWORKS.into(),
            "The site's local networks (MUD `local-networks`): the networks inside the site the device may reach, e.g. the IoT VLAN".into(),
        ),
        Class::SameManufacturer => {
            let a = authority(mud_url);
            (
                format!("{SAME_MFG}{}", slug(a)),
                format!("Addresses of the site's devices whose MUD URL has the authority `{a}` (MUD `same-manufacturer`)"),
            )
        }
        Class::Manufacturer(m) => (
            format!("{MFG}{}", slug(m)),
            format!("Addresses of the site's devices whose MUD URL has the authority `{m}` (MUD `manufacturer`)"),
        ),
        Class::Model(m) => (
            format!("{MODEL}{}", slug(m)),
            format!("Addresses of the site's devices whose MUD URL is `{m}` (MUD `model`)"),
        ),
        Class::Controller(c) => match own_class(c, mud_url) {
            Some(var) => (
                var.to_string(),
                format!("Hosts of the class `{c}` this MUD file defines (MUD `controller`)"),
            ),
            None => (
                format!("{CONTROLLER}{}", slug(c)),
                format!("Addresses of the MUD controller class `{c}` (MUD `controller`): ask the vendor what it is"),
            ),
        },
        Class::MyController => (
            format!("{}{MY_CONTROLLER}", slug(profile)),
            format!("Addresses of this device's own controller (MUD `my-controller` of {mud_url})"),
        ),
    }
}

/// `mud export` writes a site variable of its own (not one import made)
/// as the controller class `<mud-url>#<variable>`; this reads it back.
fn own_class<'a>(uri: &'a str, mud_url: &str) -> Option<&'a str> {
    let var = uri.strip_prefix(mud_url)?.strip_prefix('#')?;
    (!var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(var)
}

/// The first backtick-quoted text of a description.
fn quoted(description: Option<&str>) -> Option<String> {
    let d = description?;
    let (_, rest) = d.split_once('`')?;
    let (q, _) = rest.split_once('`')?;
    Some(q.to_string())
}

/// The MUD class for the site variable `var` (its `requires:` description,
/// if any): the classes import makes, the registered NTP controller for
/// the `ntp` block's variable, and any other variable as a class of this
/// file's own (`<mud-url>#<var>`).
pub fn from_var(var: &str, description: Option<&str>, mud_url: &str) -> Class {
    let q = quoted(description);
    if var == LOCAL_NETWORKS {
        Class::LocalNetworks
    } else if var.starts_with(SAME_MFG) {
        Class::SameManufacturer
    } else if let (Some(_), Some(m)) = (var.strip_prefix(MFG), &q) {
        Class::Manufacturer(m.clone())
    } else if let (Some(_), Some(m)) = (var.strip_prefix(MODEL), &q) {
        Class::Model(m.clone())
    } else if let (Some(_), Some(c)) = (var.strip_prefix(CONTROLLER), &q) {
        Class::Controller(c.clone())
    } else if var.ends_with(MY_CONTROLLER) {
        Class::MyController
    } else if var == NTP_VAR {
        Class::Controller(NTP_URN.into())
    } else {
        Class::Controller(format!("{mud_url}#{var}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_survives_a_variable() {
        let url = "https://lighting.example.com/lightbulb2000";
        for c in [
            Class::LocalNetworks,
            Class::SameManufacturer,
            Class::Manufacturer("bms.example.com".into()),
            Class::Model("https://bms.example.com/.well-known/mud/lb".into()),
            Class::Controller("http://lighting.example.com/lightcontroller".into()),
            Class::Controller(format!("{url}#sensorberg_backend_hosts")),
            Class::MyController,
        ] {
            let (var, desc) = to_var(&c, "lightbulb2000", url);
            assert_eq!(from_var(&var, Some(&desc), url), c, "{var}: {desc}");
        }
        assert_eq!(
            from_var("printer_networks", None, url),
            Class::Controller(format!("{url}#printer_networks"))
        );
        assert_eq!(
            authority("https://u@a.example.com:8443/x?y"),
            "a.example.com:8443"
        );
        assert_eq!(
            slug("http://Lighting.example.com/light-controller/"),
            "http_lighting_example_com_light_controller"
        );
    }
}
