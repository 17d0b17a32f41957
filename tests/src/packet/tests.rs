//! The builder's frames, byte for byte: these are what the positional
//! helpers it replaced (`eth(.., &ipv4_full(..))`) produced, so the fixture
//! table and the traffic generators send what they sent before.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

const A: [u8; 6] = [2, 0, 0, 0, 1, 1];
const B: [u8; 6] = ROUTER_MAC;
const S4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const D4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const S6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20);
const D6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 6);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn frames_are_byte_identical_to_the_positional_helpers() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an IPv4 TCP SYN",
            Packet::eth(A, B).ipv4(S4, D4).tcp(40000, 443).flags(TCP_SYN).build(),
            "0200000000fe0200000001010800450000280001000040060000c000020ac633640a9c4001bb00000001000000005002ffff00000000",
        ),
        (
            "IPv4 UDP with data behind three tags",
            Packet::eth(A, B).svlan(100).vlan(101).vlan(102).ipv4(S4, D4).udp(1, 2).data(b"ntp").build(),
            "0200000000fe02000000010188a80064810000658100006608004500001f0001000040110000c000020ac633640a00010002000b00006e7470",
        ),
        (
            "a first fragment with options",
            Packet::eth(A, B).ipv4(S4, D4).options(&[1, 1, 1, 0]).frag(0x2000).id(777).udp(124, 123).data(&[0; 32]).build(),
            "0200000000fe0200000001010800460000400309200040110000c000020ac633640a01010100007c007b002800000000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "a tiny first fragment: 8 bytes of TCP",
            Packet::eth(A, B).ipv4(S4, D4).frag(0x2000).id(780).tcp(40000, 443).flags(TCP_SYN).cut(8).build(),
            "0200000000fe02000000010108004500001c030c200040060000c000020ac633640a9c4001bb00000001",
        ),
        (
            "an ICMP echo",
            Packet::eth(A, B).ipv4(S4, D4).icmp(8, 7).build(),
            "0200000000fe0200000001010800450000240001000040010000c000020ac633640a08000000000700010000000000000000",
        ),
        (
            "IPv6 behind four extension headers",
            Packet::eth(A, B).ipv6(S6, D6).hop_by_hop().dest_opts().routing().fragment(3, true, 0xabcd).tcp(1, 2).flags(TCP_SYN | TCP_ACK).build(),
            "0200000000fe02000000010186dd600000000034004020010db800010000000000000000002020010db800ff000000000000000000063c000104000000002b000104000000002c00010400000000060000190000abcd0001000200000001000000005012ffff00000000",
        ),
        (
            "a neighbour solicitation, hop limit 255",
            Packet::eth(A, B).ipv6(S6, D6).ttl(255).icmpv6(135, 0).build(),
            "0200000000fe02000000010186dd6000000000103aff20010db800010000000000000000002020010db800ff0000000000000000000687000000000000010000000000000000",
        ),
        (
            "an ARP request",
            Packet::arp_request(A, S4, D4),
            "ffffffffffff02000000010108060001080006040001020000000101c000020a000000000000c633640a",
        ),
        (
            "raw bytes behind the ARP ethertype, tagged",
            Packet::eth(A, BROADCAST_MAC).vlan(100).ether(ETH_ARP, &[0; 28]).build(),
            "ffffffffffff02000000010181000064080600000000000000000000000000000000000000000000000000000000",
        ),
        (
            "IPv4 with its header checksum, a wrong UDP checksum",
            Packet::eth(A, B).ip(S4.into(), D4.into()).udp(5, 53).data(b"q").udp_checksum(0xdead).build(),
            "0200000000fe02000000010108004500001d0001000040118e87c000020ac633640a000500350009dead71",
        ),
        (
            "IPv6 by ip()",
            Packet::eth(A, B).ip(S6.into(), D6.into()).udp(5, 53).data(b"q").build(),
            "0200000000fe02000000010186dd600000000009114020010db800010000000000000000002020010db800ff00000000000000000006000500350009000071",
        ),
        (
            "a protocol without ports",
            Packet::eth(A, B).ipv4(S4, D4).payload(47, &[0; 8]).build(),
            "0200000000fe02000000010108004500001c00010000402f0000c000020ac633640a0000000000000000",
        ),
    ];
    for (name, got, want) in cases {
        assert_eq!(got, hex(want), "{name}");
    }
}
