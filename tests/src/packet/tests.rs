//! Temporary: the builder against the positional helpers it replaces.

use super::*;

const A: [u8; 6] = [2, 0, 0, 0, 1, 1];
const B: [u8; 6] = ROUTER_MAC;

#[test]
fn builder_matches_the_positional_helpers() {
    let s4 = v4("192.0.2.10");
    let d4 = v4("198.51.100.10");
    let s6 = v6("2001:db8:1::20");
    let d6 = v6("2001:db8:ff::6");
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            eth(
                A,
                B,
                &[],
                ETH_IP,
                &ipv4(s4, d4, 6, &tcp(40000, 443, TCP_SYN)),
            ),
            Packet::eth(A, B)
                .ipv4(s4, d4)
                .tcp(40000, 443)
                .flags(TCP_SYN)
                .build(),
        ),
        (
            eth(
                A,
                B,
                &[TPID_8021AD, TPID_8021Q, TPID_8021Q],
                ETH_IP,
                &ipv4(s4, d4, 17, &udp(1, 2, b"ntp")),
            ),
            Packet::eth(A, B)
                .svlan(100)
                .vlan(101)
                .vlan(102)
                .ipv4(s4, d4)
                .udp(1, 2)
                .data(b"ntp")
                .build(),
        ),
        (
            eth(
                A,
                B,
                &[],
                ETH_IP,
                &ipv4_full(
                    s4,
                    d4,
                    17,
                    &[1, 1, 1, 0],
                    0x2000,
                    777,
                    &udp(124, 123, &[0; 32]),
                ),
            ),
            Packet::eth(A, B)
                .ipv4(s4, d4)
                .options(&[1, 1, 1, 0])
                .frag(0x2000)
                .id(777)
                .udp(124, 123)
                .data(&[0; 32])
                .build(),
        ),
        (
            eth(
                A,
                B,
                &[],
                ETH_IP,
                &ipv4_full(s4, d4, 6, &[], 0x2000, 780, &tcp(40000, 443, TCP_SYN)[..8]),
            ),
            Packet::eth(A, B)
                .ipv4(s4, d4)
                .frag(0x2000)
                .id(780)
                .tcp(40000, 443)
                .flags(TCP_SYN)
                .cut(8)
                .build(),
        ),
        (
            eth(A, B, &[], ETH_IP, &ipv4(s4, d4, 1, &icmp(8, 7))),
            Packet::eth(A, B).ipv4(s4, d4).icmp(8, 7).build(),
        ),
        (
            eth(
                A,
                B,
                &[],
                ETH_IPV6,
                &ipv6_full(
                    s6,
                    d6,
                    6,
                    &[
                        ext_opts(0),
                        ext_opts(60),
                        ext_opts(43),
                        ext_frag(3, true, 0xabcd),
                    ],
                    &tcp(1, 2, TCP_SYN | TCP_ACK),
                ),
            ),
            Packet::eth(A, B)
                .ipv6(s6, d6)
                .hop_by_hop()
                .dest_opts()
                .routing()
                .fragment(3, true, 0xabcd)
                .tcp(1, 2)
                .flags(TCP_SYN | TCP_ACK)
                .build(),
        ),
        (
            {
                let mut f = eth(A, B, &[], ETH_IPV6, &ipv6(s6, d6, 58, &icmp(135, 0)));
                f[14 + 7] = 255;
                f
            },
            Packet::eth(A, B)
                .ipv6(s6, d6)
                .ttl(255)
                .icmpv6(135, 0)
                .build(),
        ),
        (arp(A, s4, d4), Packet::arp_request(A, s4, d4)),
        (
            eth(A, [0xff; 6], &[TPID_8021Q], 0x0806, &[0; 28]),
            Packet::eth(A, BROADCAST_MAC)
                .vlan(100)
                .ether(ETH_ARP, &[0; 28])
                .build(),
        ),
        (
            ip_frame(A, B, s4.into(), d4.into(), 17, &{
                let mut u = udp(5, 53, b"q");
                u[6..8].copy_from_slice(&[0xde, 0xad]);
                u
            }),
            Packet::eth(A, B)
                .ip(s4.into(), d4.into())
                .udp(5, 53)
                .data(b"q")
                .udp_checksum(0xdead)
                .build(),
        ),
        (
            ip_frame(A, B, s6.into(), d6.into(), 17, &udp(5, 53, b"q")),
            Packet::eth(A, B)
                .ip(s6.into(), d6.into())
                .udp(5, 53)
                .data(b"q")
                .build(),
        ),
        (
            eth(A, B, &[], ETH_IP, &ipv4(s4, d4, 47, &[0; 8])),
            Packet::eth(A, B).ipv4(s4, d4).payload(47, &[0; 8]).build(),
        ),
    ];
    for (i, (old, new)) in cases.iter().enumerate() {
        assert_eq!(old, new, "case {i}");
    }
}
