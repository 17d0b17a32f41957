//! Devices: identity by MAC and/or addresses, checked against the devices
//! before it; MAC addresses in the form events print.

use serde_saphyr::Spanned;

use iotfence_common::Mac;

use crate::diag::Diags;

use super::addr::parse_net;
use super::CompiledDevice;

/// One device's identity, checked against the devices before it.
pub(super) fn device(
    d: &mut Diags<'_>,
    dev: &Spanned<crate::policy::doc::DeviceDoc>,
    before: &[CompiledDevice],
) -> Option<CompiledDevice> {
    let v = &dev.value;
    if before.iter().any(|o| o.name == v.name.value) {
        d.on(
            &v.name,
            format!("device `{}` is defined twice", v.name.value),
            None,
        );
    }
    let mac = v
        .mac
        .as_ref()
        .and_then(|m| match m.value.parse::<Mac>().ok().map(|m| m.0) {
            Some(mac) if mac[0] & 1 == 1 => {
                d.on(
                    m,
                    format!("`{}` is a multicast MAC address", m.value),
                    Some("a device sends from a unicast address"),
                );
                None
            }
            Some(mac) => {
                if let Some(o) = before.iter().find(|o| o.mac == Some(mac)) {
                    d.on(
                        m,
                        format!("MAC {} is also device `{}`", m.value, o.name),
                        None,
                    );
                }
                Some(mac)
            }
            None => {
                d.on(
                    m,
                    format!("`{}` is not a MAC address", m.value),
                    Some("write it as 02:00:5e:10:00:01"),
                );
                None
            }
        });
    let mut nets = Vec::new();
    for (loc, a) in v.ip.iter().flat_map(|l| l.value.located(l.referenced)) {
        if let Some(net) = parse_net(d, loc, a) {
            if let Some(o) = before
                .iter()
                .find(|o| o.nets.iter().any(|n| n.contains(&net) || net.contains(n)))
            {
                d.at(
                    loc,
                    format!("{net} overlaps device `{}`", o.name),
                    Some("a source address identifies one device"),
                );
            }
            nets.push(net);
        }
    }
    if v.mac.is_none() && v.ip.is_none() {
        d.on(
            dev,
            format!("device `{}` has neither `mac` nor `ip`", v.name.value),
            Some("iotfence recognizes devices by MAC, then by source address"),
        );
    }
    let mac_or_ip = match v.matching.as_ref().map(|m| (m, m.value.as_str())) {
        None | Some((_, "mac-and-ip")) => false,
        Some((_, "mac-or-ip")) => true,
        Some((m, other)) => {
            d.on(
                m,
                format!("`{other}` is not a match mode"),
                Some("mac-and-ip (the default: both must match) or mac-or-ip"),
            );
            false
        }
    };
    Some(CompiledDevice {
        id: before.len() as u32 + 1,
        name: v.name.value.clone(),
        profile: 0,
        mac,
        nets,
        mac_or_ip,
    })
}
