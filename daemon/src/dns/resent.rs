//! DNS-over-TCP answers the daemon released, told to the kernel. A held
//! segment was dropped at egress, so the router's TCP stack counts it as
//! never sent and sends it again; the kernel lets a segment through that
//! lies within a released one (`TCP_RESENT`) instead of holding it anew,
//! and the connection goes on (see `ebpf/src/dns.rs`).

use aya::maps::{HashMap, MapData};
use iotfence_common::{consts::FLOW_KIND_CONN, keys::addr_key, FlowKey, ResentKey};

use iotfence_common::consts::PROTO_TCP;

use super::frame::Frame;

pub struct Released {
    map: HashMap<MapData, ResentKey, u32>,
}

impl Released {
    pub fn new(map: HashMap<MapData, ResentKey, u32>) -> Self {
        Self { map }
    }

    /// Records the TCP segment `f` of `bytes` (a resolver's answer to a
    /// device) as released; must happen before the copy is sent, or the
    /// stack's re-send could race it and be held again.
    pub fn record(&mut self, bytes: &[u8], f: &Frame) -> Result<(), aya::maps::MapError> {
        if f.proto != PROTO_TCP {
            return Ok(());
        }
        let Some(seq) = bytes.get(f.l4 + 4..f.l4 + 8) else {
            return Ok(());
        };
        let seq = u32::from_be_bytes(seq.try_into().expect("4 bytes"));
        let key = ResentKey {
            flow: FlowKey {
                src: addr_key(f.dst),
                dst: addr_key(f.src),
                sport: f.dport,
                dport: f.sport,
                proto: PROTO_TCP,
                kind: FLOW_KIND_CONN,
                _pad: [0; 2],
            },
            seq,
        };
        let end = seq.wrapping_add(f.payload.len() as u32);
        self.map.insert(key, end, 0)
    }
}
