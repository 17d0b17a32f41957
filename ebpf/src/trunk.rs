//! Trunks: an interface that carries several VLANs, of which the
//! configuration names the IoT ones (`vlans:`). A frame tagged with any
//! other VLAN is not a device's: it passes untouched and uncounted, both
//! ways. Untagged frames are judged.

use iotfence_common::consts::CONFIG_TRUNKS;

use crate::maps::TRUNKS;

/// Where a frame was seen: the interface, and the VLAN tag the kernel has
/// already moved out of the frame into the skb (TC), if any.
#[derive(Clone, Copy)]
pub struct Wire {
    pub ifindex: u32,
    pub skb_vlan: Option<u16>,
}

/// The frame belongs to a VLAN this trunk does not judge. `frame_vlan`:
/// the outer tag found in the frame (`Headers::vlan`).
#[inline(always)]
pub fn other_vlan(config_flags: u32, wire: Wire, frame_vlan: u16) -> bool {
    if config_flags & CONFIG_TRUNKS == 0 {
        return false;
    }
    let Some(set) = (unsafe { TRUNKS.get(&wire.ifindex) }) else {
        return false;
    };
    !set.has(wire.skb_vlan.unwrap_or(frame_vlan))
}
