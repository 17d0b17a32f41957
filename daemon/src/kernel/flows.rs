//! Forgetting a device's flows: when its learning ends, the flows it opened
//! while everything was allowed must not outlive the session (each would
//! ride on until idle, an hour for TCP). Its packets are then judged by its
//! profile again, which opens a flow anew for what it allows. Flows an
//! inbound allowance opened stay (the device's side of them is not judged
//! by egress rules alone).

use aya::maps::{HashMap, MapData};
use iotfence_common::{values::FlowValue, FlowKey};

/// Removes `device`'s outbound flows (and fragment trains); how many. Walks
/// the whole table: one lookup per entry, at the end of a session only.
pub fn forget_device(
    flows: &mut HashMap<MapData, FlowKey, FlowValue>,
    device: u32,
) -> anyhow::Result<usize> {
    let doomed: Vec<FlowKey> = flows
        .iter()
        .filter_map(Result::ok)
        .filter(|(_, v)| v.device == device && v.inbound == 0)
        .map(|(k, _)| k)
        .collect();
    let mut n = 0;
    for k in &doomed {
        // Gone meanwhile (idle, evicted) is as good as removed.
        if flows.remove(k).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}
