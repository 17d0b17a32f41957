//! The traffic generator: an XDP program that rewrites the fleet's
//! template frame, run as live frames (`floor::send_live`).

use std::os::fd::OwnedFd;

use iotfence_tests::floor;

use super::{
    fleet::{ALLOWED_DST, FORBIDDEN_DST},
    Fleet, Mix,
};

impl Fleet {
    /// The traffic generator: an XDP program run as live frames on the
    /// template. Per frame it draws a device `d` (< `devices`, at most 240)
    /// and, for `Mix::Half`, whether the frame is forbidden `f`; it writes
    /// the device's MAC and address and the destination (203.0.113.1, or
    /// .200 outside the allowed /28), and lowers the IP id by what it added
    /// to the addresses, so the header checksum stays valid untouched.
    pub fn generator(&self, mix: Mix) -> std::io::Result<OwnedFd> {
        use floor::insn;
        assert!(
            self.devices <= 240,
            "192.0.2.10 + devices must stay in the /24"
        );
        let n = self.devices as i32;
        let step = (FORBIDDEN_DST.octets()[3] - ALLOWED_DST.octets()[3]) as i32;
        let mut p = vec![
            insn(0xbf, 6, 1, 0, 0),      // r6 = ctx
            insn(0x85, 0, 0, 0, 7),      // r0 = bpf_get_prandom_u32()
            insn(0xbf, 7, 0, 0, 0),      // r7 = r0
            insn(0x57, 7, 0, 0, 0xffff), // r7 &= 0xffff
            insn(0x97, 7, 0, 0, n),      // r7 %= devices: d
        ];
        match mix {
            Mix::Flood => p.push(insn(0xb7, 8, 0, 0, 1)), // r8 = 1: f
            Mix::Allowed => p.push(insn(0xb7, 8, 0, 0, 0)), // r8 = 0: f
            Mix::Half => p.extend([
                insn(0xbf, 8, 0, 0, 0),  // r8 = r0
                insn(0x77, 8, 0, 0, 16), // r8 >>= 16
                insn(0x57, 8, 0, 0, 1),  // r8 &= 1: f
            ]),
        }
        p.extend([
            insn(0x61, 2, 6, 0, 0),  // r2 = ctx->data
            insn(0x61, 3, 6, 4, 0),  // r3 = ctx->data_end
            insn(0xbf, 4, 2, 0, 0),  // r4 = r2
            insn(0x07, 4, 0, 0, 42), // r4 += 42
        ]);
        // The page pool recycles the frames' pages after the router is done
        // with them, and forwarding rewrote their Ethernet header, TTL and
        // checksum in place: restore those bytes from the template first.
        let template = self.template();
        let mut body: Vec<u64> = (0..12)
            .chain(22..26)
            .map(|i| insn(0x72, 2, 0, i as i16, template[i] as i32)) // *(u8 *)(r2 + i) = imm
            .collect();
        body.extend([
            insn(0x73, 2, 7, 11, 0),   // src MAC[5] = d
            insn(0xbf, 5, 7, 0, 0),    // r5 = d
            insn(0x07, 5, 0, 0, 10),   // r5 += 10
            insn(0x73, 2, 5, 29, 0),   // src IP[3] = 10 + d
            insn(0xbf, 5, 8, 0, 0),    // r5 = f
            insn(0x27, 5, 0, 0, step), // r5 *= step
            insn(0xbf, 9, 5, 0, 0),    // r9 = f * step
            insn(0x07, 5, 0, 0, ALLOWED_DST.octets()[3] as i32),
            insn(0x73, 2, 5, 33, 0),     // dst IP[3] = 1 + f * step
            insn(0xb7, 5, 0, 0, 0x8000), // r5 = 0x8000
            insn(0x1f, 5, 7, 0, 0),      // r5 -= d
            insn(0x1f, 5, 9, 0, 0),      // r5 -= f * step
            insn(0x73, 2, 5, 19, 0),     // IP id, low byte
            insn(0x77, 5, 0, 0, 8),      // r5 >>= 8
            insn(0x73, 2, 5, 18, 0),     // IP id, high byte
            insn(0xb7, 0, 0, 0, floor::XDP_TX as i32),
            insn(0x95, 0, 0, 0, 0),
        ]);
        // if r4 > r3 (frame too short): past the body, to the drop.
        p.push(insn(0x2d, 4, 3, body.len() as i16, 0));
        p.extend(body);
        p.extend([
            insn(0xb7, 0, 0, 0, floor::XDP_DROP as i32),
            insn(0x95, 0, 0, 0, 0),
        ]);
        floor::load_xdp(&p)
    }
}
