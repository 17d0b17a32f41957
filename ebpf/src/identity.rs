//! Who a packet belongs to: the device by MAC, by address or prefix (both
//! when the device is bound to them), else the default record.

use iotfence_common::{
    consts::{DEVICE_NEEDS_IP4, DEVICE_NEEDS_IP6},
    keys::device_scope,
    DeviceInfo,
};

use crate::{
    maps::{DEFAULT_DEVICE, DEVICE_BIND, DEVICE_BY_IP4, DEVICE_BY_IP6, DEVICE_BY_MAC},
    scratch::Scratch,
};

/// The device behind a packet: by MAC, then by address or prefix, else the
/// default record. A device listed with a MAC and addresses of the packet's
/// family (`DEVICE_NEEDS_IP*`) is itself only when both match: its MAC from
/// another address, or its address from another MAC, is the default
/// record. `towards` selects the destination (packets to a device) instead
/// of the source.
#[inline(always)]
pub fn identify(generation: u8, s: &mut Scratch, towards: bool) -> DeviceInfo {
    let h = &s.h;
    s.mac.generation = generation;
    s.mac._pad = 0;
    s.mac.mac = if towards { h.dst_mac } else { h.src_mac };
    let family_bit = match h.family {
        4 => DEVICE_NEEDS_IP4,
        6 => DEVICE_NEEDS_IP6,
        _ => 0,
    };
    // (found, record) pairs, zeroed when not found: an `Option` would leave
    // its payload undefined, and the verifier refuses reading that.
    let (mac_found, m) = match unsafe { DEVICE_BY_MAC.get(&s.mac) } {
        Some(d) => (true, *d),
        None => (false, DeviceInfo::default()),
    };
    if mac_found && m.flags & family_bit == 0 {
        return m;
    }
    let addr = if towards { h.dst } else { h.src };
    if mac_found {
        // Bound: one of its host addresses (a hash lookup), else, if it
        // listed CIDRs of this family, one of those (the trie, below).
        s.bind.mac = s.mac;
        s.bind.addr = addr;
        if unsafe { DEVICE_BIND.get(&s.bind) }.is_some() {
            return m;
        }
        // DEVICE_PREFIX_IP4/6 sit two bits above DEVICE_NEEDS_IP4/6.
        if m.flags & (family_bit << 2) == 0 {
            return default_device(generation);
        }
    }
    let by_ip = match h.family {
        0 => None,
        _ => s.lpm(
            device_scope(generation),
            addr,
            &DEVICE_BY_IP4,
            &DEVICE_BY_IP6,
        ),
    };
    let (ip_found, i) = match by_ip {
        Some(d) => (true, *d),
        None => (false, DeviceInfo::default()),
    };
    if ip_found {
        // Bound: the address must be one of the MAC's device; and an
        // address of a MAC-bound device counts only from that MAC.
        if mac_found {
            if i.device == m.device {
                return m;
            }
        } else if i.flags & family_bit == 0 {
            return i;
        }
    }
    default_device(generation)
}

#[inline(always)]
pub fn default_device(generation: u8) -> DeviceInfo {
    match DEFAULT_DEVICE.get(generation as u32) {
        Some(d) => *d,
        None => DeviceInfo::default(),
    }
}
