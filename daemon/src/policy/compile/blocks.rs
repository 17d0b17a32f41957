//! The built-in building blocks a profile can `use:`: DHCP and DNS to the
//! site's servers, NTP to the servers a site variable names.

use iotfence_common::{
    consts::{PROTO_TCP, PROTO_UDP},
    PortRule,
};
use ipnet::IpNet;

use serde_saphyr::Spanned;

use super::{
    addr::{destination, host},
    vars::Vars,
    Draft, NTP_VAR,
};
use crate::{config::Config, diag::Diags, policy::doc::ProfileDoc};

pub(super) fn dhcp_rules(cfg: &Config) -> Vec<(IpNet, PortRule)> {
    let mut v = vec![
        (
            host("255.255.255.255".parse().unwrap()),
            PortRule::new(PROTO_UDP, 67, 67),
        ),
        (
            host("ff02::1:2".parse().unwrap()),
            PortRule::new(PROTO_UDP, 547, 547),
        ),
    ];
    for s in &cfg.dhcp_servers {
        let port = if s.is_ipv4() { 67 } else { 547 };
        v.push((host(*s), PortRule::new(PROTO_UDP, port, port)));
    }
    v
}

pub(super) fn dns_rules(cfg: &Config) -> Vec<(IpNet, PortRule)> {
    cfg.resolvers
        .iter()
        .flat_map(|r| {
            [
                (host(*r), PortRule::new(PROTO_UDP, 53, 53)),
                (host(*r), PortRule::new(PROTO_TCP, 53, 53)),
            ]
        })
        .collect()
}

/// Adds the rules of the blocks `p` uses to `out`.
pub(super) fn use_blocks(
    d: &mut Diags<'_>,
    p: &Spanned<ProfileDoc>,
    cfg: &Config,
    vars: &Vars<'_>,
    out: &mut Draft,
) {
    for u in &p.value.uses {
        let since = super::origin::mark(out);
        match u.value.as_str() {
            "dhcp" => out.egress.extend(dhcp_rules(cfg)),
            "dns" => {
                if cfg.resolvers.is_empty() {
                    d.on(
                        u,
                        "`dns` needs resolvers, and the configuration lists none",
                        Some("set `resolvers:` in the configuration file"),
                    );
                }
                out.egress.extend(dns_rules(cfg));
            }
            "ntp" => match vars.set.get(NTP_VAR) {
                None => d.on(
                    u,
                    format!("`ntp` sends to the site variable `{NTP_VAR}`, which is not set"),
                    Some(&vars.hint(NTP_VAR)),
                ),
                Some(v) => {
                    let ntp = [PortRule::new(PROTO_UDP, 123, 123)];
                    for (_, text) in v.value.located(v.referenced) {
                        destination(d, u.referenced, text, &ntp, out, cfg);
                    }
                }
            },
            other => d.on(
                u,
                format!("unknown building block `{other}`"),
                Some("available: dhcp, dns, ntp"),
            ),
        }
        let kind = format!("use: {}", u.value);
        super::origin::record(d, out, since, &kind, Some(u.referenced), None, None);
    }
}
