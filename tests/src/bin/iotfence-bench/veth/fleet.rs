//! The devices and the policy every filter enforces, and their frames.

use std::net::Ipv4Addr;

use iotfence_common::Mac;
use iotfence_tests::packet::Packet;

use super::Filter;

pub(super) const ROUTER_IOT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbe, 0x01];
pub(super) const ALLOWED_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub(super) const FORBIDDEN_DST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);

/// The devices and the policy every filter enforces: each device may send
/// UDP to port 443 of 203.0.113.0/28 (the generator's allowed frames go to
/// 203.0.113.1, its forbidden ones to 203.0.113.200) and nothing else.
pub struct Fleet {
    pub devices: usize,
}

impl Fleet {
    pub fn mac(&self, i: usize) -> [u8; 6] {
        [0x02, 0, 0, 0x01, (i >> 8) as u8, i as u8]
    }

    pub fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, 10 + i as u8)
    }

    /// The frame the generator sends for device `i` (checksum aside):
    /// to the allowed destination, or the forbidden one.
    pub fn frame(&self, i: usize, forbidden: bool) -> Vec<u8> {
        let dst = if forbidden {
            FORBIDDEN_DST
        } else {
            ALLOWED_DST
        };
        self.packet(i, dst).build()
    }

    /// Device `i`'s frame to `dst`, unbuilt. 18 bytes of payload: a
    /// 60-byte frame, 64 on the wire with the FCS.
    fn packet(&self, i: usize, dst: Ipv4Addr) -> Packet {
        Packet::eth(self.mac(i), ROUTER_IOT_MAC)
            .ipv4(self.ip(i), dst)
            .udp(40000, 443)
            .data(&[0u8; 18])
    }

    /// The frame the generator starts from: device 0, allowed destination,
    /// IP id 0x8000 (see `generator`).
    pub fn template(&self) -> Vec<u8> {
        self.packet(0, ALLOWED_DST)
            .id(0x8000)
            .header_checksum()
            .build()
    }

    pub fn policy_yaml(&self) -> String {
        let mut y = String::from(
            "profiles:\n  sensor:\n    egress:\n      - to: 203.0.113.0/28\n        proto: udp\n        ports: 443\ndevices:\n",
        );
        for i in 0..self.devices {
            y += &format!(
                "  - name: dev-{i}\n    mac: {}\n    ip: {}\n    profile: sensor\n",
                Mac(self.mac(i)),
                self.ip(i)
            );
        }
        y
    }

    /// The same policy as nftables named sets, in a netdev ingress chain
    /// or an inet forward chain behind conntrack.
    pub fn nft_ruleset(&self, filter: Filter) -> String {
        let macs: Vec<String> = (0..self.devices)
            .map(|i| Mac(self.mac(i)).to_string())
            .collect();
        let sets = format!(
            "  set iot_devices {{ type ether_addr; elements = {{ {} }} }}\n  \
             set allowed {{ type ipv4_addr . inet_proto . inet_service; flags interval; \
             elements = {{ 203.0.113.0/28 . udp . 443 }} }}\n",
            macs.join(", ")
        );
        match filter {
            Filter::NftNetdev => format!(
                "table netdev iotfence_bench {{\n{sets}  chain ingress {{\n    \
                 type filter hook ingress device \"iot0\" priority 0; policy accept;\n    \
                 meta protocol != ip accept\n    \
                 ether saddr @iot_devices ip daddr . meta l4proto . th dport @allowed accept\n    \
                 drop\n  }}\n}}\n"
            ),
            Filter::NftForward => format!(
                "table inet iotfence_bench {{\n{sets}  chain forward {{\n    \
                 type filter hook forward priority 0; policy accept;\n    \
                 ct state established,related accept\n    \
                 iifname \"iot0\" ether saddr @iot_devices ip daddr . meta l4proto . th dport @allowed accept\n    \
                 iifname \"iot0\" drop\n  }}\n}}\n"
            ),
            _ => String::new(),
        }
    }
}
