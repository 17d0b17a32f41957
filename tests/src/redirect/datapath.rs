//! `dns.redirect` in the datapath (BPF_PROG_TEST_RUN): a device's DNS query
//! to a resolver it hard-codes leaves TC with the configured resolver as
//! its destination and correct checksums, the answer comes back with the
//! asked address as its source, and nothing else is touched or widened.
//! Each check panics at the first disagreement.

use std::net::IpAddr;

use crate::{
    fixtures::{CAM_MAC, CONFIG_EXTRA, POLICY, STRANGER_MAC},
    harness::{Harness, TC_ACT_SHOT, TC_ACT_UNSPEC, XDP_DROP, XDP_PASS},
    packet::{v4, v6, Packet, ROUTER_MAC, TCP_ACK, TCP_SYN},
};
use iotfence::{dns::frame, kernel::router_addrs::RouterAddrs};
use iotfence_common::{
    consts::{map_names, prog_names},
    dns::{RedirectKey, RedirectValue},
    keys::addr_key,
};

const HARD_CODED: &str = "203.0.113.53";
const HARD_CODED6: &str = "2001:db8:ff::53";
const RESOLVER: &str = "192.0.2.1";
const RESOLVER6: &str = "2001:db8:1::1";
const SENSOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x04, 0x01];

/// The fixture policy and configuration, `dns.redirect` on or off.
pub fn harness(redirect: bool) -> Harness {
    let extra = format!("{CONFIG_EXTRA}dns:\n  redirect: {redirect}\n");
    // The fixture policy, but unknown devices may not use DNS.
    let policy = POLICY.replacen(
        "profiles:\n",
        "profiles:\n  mute:\n    egress:\n      - to: 198.51.100.0/24\n        proto: tcp\n        ports: 443\n",
        1,
    ) + "default_profile: mute\n";
    let mut h = Harness::new(&policy, &extra);
    // The resolver table and the redirect targets, as the daemon writes them.
    RouterAddrs::default()
        .update(&mut h.dp, &h.cfg)
        .expect("writing the resolvers");
    h
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `p` with correct checksums (IPv4 header, TCP/UDP: the latter computed
/// by the daemon's own code).
fn checksummed(p: Packet) -> Vec<u8> {
    let mut b = p.build();
    let f = frame::parse(&b).expect("a TCP/UDP frame");
    if f.src.is_ipv4() {
        b[f.l3 + 10..f.l3 + 12].fill(0);
        let c = !header_sum(&b[f.l3..f.l4]);
        b[f.l3 + 10..f.l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    frame::finalize_checksum(&mut b, &f);
    b
}

/// The one's complement sum of an IPv4 header (0xffff when its checksum
/// is right).
fn header_sum(h: &[u8]) -> u16 {
    let mut acc = 0u32;
    for c in h.chunks(2) {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Every checksum of `b` is right: recomputing changes nothing.
fn assert_checksums(b: &[u8], what: &str) {
    let f = frame::parse(b).unwrap_or_else(|| panic!("{what}: not a TCP/UDP frame"));
    if f.src.is_ipv4() {
        assert_eq!(
            header_sum(&b[f.l3..f.l4]),
            0xffff,
            "{what}: IPv4 header checksum"
        );
    }
    let mut again = b.to_vec();
    frame::finalize_checksum(&mut again, &f);
    assert_eq!(b, &again[..], "{what}: TCP/UDP checksum");
}

fn query4(sport: u16, dst: &str) -> Packet {
    Packet::eth(CAM_MAC, ROUTER_MAC)
        .ipv4(v4("192.0.2.10"), v4(dst))
        .udp(sport, 53)
        .data(&[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
}

fn redirect_entry(
    h: &Harness,
    device: &str,
    resolver: &str,
    port: u16,
    proto: u8,
) -> Option<RedirectValue> {
    let map: aya::maps::HashMap<_, RedirectKey, RedirectValue> =
        iotfence::kernel::pins::open_pinned(&h.pins.path, map_names::REDIRECTS).unwrap();
    let key = RedirectKey {
        device: addr_key(ip(device)),
        resolver: addr_key(ip(resolver)),
        port,
        proto,
        _pad: 0,
    };
    map.get(&key, 0).ok()
}

fn src_dst(b: &[u8]) -> (IpAddr, IpAddr) {
    let f = frame::parse(b).unwrap();
    (f.src, f.dst)
}

pub fn tc_judge_rewrites_a_hard_coded_resolver_query_and_its_answer(h: &Harness) {
    let before = h.counters.redirected().unwrap();
    let cases = [
        ("udp4", checksummed(query4(40000, HARD_CODED)), RESOLVER, 17),
        (
            "tcp4 syn",
            checksummed(
                Packet::eth(CAM_MAC, ROUTER_MAC)
                    .ipv4(v4("192.0.2.10"), v4(HARD_CODED))
                    .tcp(40001, 53)
                    .flags(TCP_SYN),
            ),
            RESOLVER,
            6,
        ),
        (
            "udp6",
            checksummed(
                Packet::eth(SENSOR_MAC, ROUTER_MAC)
                    .ipv6(v6("2001:db8:1::20"), v6(HARD_CODED6))
                    .udp(40002, 53)
                    .data(&[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
            ),
            RESOLVER6,
            17,
        ),
    ];
    for (what, packet, resolver, proto) in cases {
        let (rv, out) = h.run_out(prog_names::TC_INGRESS, &packet);
        assert_eq!(rv, TC_ACT_UNSPEC, "{what}: passed");
        let (src, dst) = src_dst(&out);
        assert_eq!(dst, ip(resolver), "{what}: sent to the configured resolver");
        assert_checksums(&out, what);
        let f = frame::parse(&packet).unwrap();
        let entry = redirect_entry(h, &src.to_string(), resolver, f.sport, proto)
            .unwrap_or_else(|| panic!("{what}: no redirect entry"));
        assert_eq!(
            entry.asked,
            addr_key(f.dst),
            "{what}: the asked resolver kept"
        );

        // The answer, from the configured resolver back to the device.
        let dev_mac: [u8; 6] = packet[6..12].try_into().unwrap();
        let answer = answer_to(&out, dev_mac);
        let (rv, back) = h.run_out(prog_names::TC_EGRESS, &answer);
        assert_eq!(rv, TC_ACT_UNSPEC, "{what}: answer delivered");
        assert_eq!(
            src_dst(&back),
            (f.dst, src),
            "{what}: the answer comes from the asked resolver"
        );
        assert_checksums(&back, &format!("{what} answer"));
    }
    let (queries, answers) = h.counters.redirected().unwrap();
    assert_eq!(
        (queries - before.0, answers - before.1),
        (3, 3),
        "redirect counters"
    );
}

/// The reply `q` (a rewritten query) gets from its resolver: addresses and
/// ports swapped, towards `dev_mac`, checksums right.
fn answer_to(q: &[u8], dev_mac: [u8; 6]) -> Vec<u8> {
    let f = frame::parse(q).unwrap();
    let p = Packet::eth(ROUTER_MAC, dev_mac).ip(f.dst, f.src);
    let p = if f.proto == 17 {
        p.udp(53, f.sport)
            .data(&[0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0])
    } else {
        p.tcp(53, f.sport).flags(TCP_SYN | TCP_ACK)
    };
    checksummed(p)
}

pub fn xdp_passes_the_query_for_tc_beside_it_to_rewrite(h: &Harness) {
    let q = checksummed(query4(40010, HARD_CODED));
    let (rv, out) = h.run_out(prog_names::XDP, &q);
    assert_eq!(rv, XDP_PASS, "XDP judges it as a query to the resolver");
    assert_eq!(out, q, "XDP leaves the packet as it is");
    let (rv, out) = h.run_out(prog_names::TC_QUERIES, &q);
    assert_eq!(rv, TC_ACT_UNSPEC);
    assert_eq!(src_dst(&out).1, ip(RESOLVER), "rewritten beside XDP");
    assert_checksums(&out, "beside XDP");
    assert!(redirect_entry(h, "192.0.2.10", RESOLVER, 40010, 17).is_some());
}

pub fn only_port_53_to_other_resolvers_of_allowed_devices_is_redirected(h: &Harness) {
    let (before, _) = h.counters.redirected().unwrap();
    // To the configured resolver: untouched.
    let q = checksummed(query4(40020, RESOLVER));
    assert_eq!(h.run_out(prog_names::TC_INGRESS, &q), (TC_ACT_UNSPEC, q));
    // DNS over TLS to the hard-coded resolver: judged as it is (dropped).
    let dot = checksummed(
        Packet::eth(CAM_MAC, ROUTER_MAC)
            .ipv4(v4("192.0.2.10"), v4(HARD_CODED))
            .tcp(40021, 853)
            .flags(TCP_SYN),
    );
    assert_eq!(h.run_out(prog_names::TC_INGRESS, &dot).0, TC_ACT_SHOT);
    assert_eq!(h.run_out(prog_names::XDP, &dot).0, XDP_DROP);
    // A stranger, whose (default) profile allows no DNS: the redirect
    // widens nothing, the query is judged as one to the resolver.
    let stranger = checksummed(
        Packet::eth(STRANGER_MAC, ROUTER_MAC)
            .ipv4(v4("192.0.2.99"), v4(HARD_CODED))
            .udp(40022, 53)
            .data(&[0; 12]),
    );
    assert_eq!(h.run_out(prog_names::TC_INGRESS, &stranger).0, TC_ACT_SHOT);
    assert!(redirect_entry(h, "192.0.2.99", RESOLVER, 40022, 17).is_none());
    // UDP over IPv4 without a checksum keeps none.
    let q = query4(40023, HARD_CODED).header_checksum().build();
    let (rv, out) = h.run_out(prog_names::TC_INGRESS, &q);
    assert_eq!(rv, TC_ACT_UNSPEC);
    let f = frame::parse(&out).unwrap();
    assert_eq!(f.dst, ip(RESOLVER));
    assert_eq!(&out[f.l4 + 6..f.l4 + 8], &[0, 0], "no UDP checksum");
    let (queries, _) = h.counters.redirected().unwrap();
    assert_eq!(queries - before, 1, "only the one query redirected");
}

pub fn an_answer_is_rewritten_only_towards_the_mac_that_asked(h: &Harness) {
    let q = checksummed(query4(40030, HARD_CODED));
    let (_, out) = h.run_out(prog_names::TC_INGRESS, &q);
    // Another host on the segment, with the device's address.
    let answer = answer_to(&out, STRANGER_MAC);
    let (rv, back) = h.run_out(prog_names::TC_EGRESS, &answer);
    assert_eq!(rv, TC_ACT_UNSPEC);
    assert_eq!(back, answer, "not rewritten towards another MAC");
}

pub fn without_redirect_a_hard_coded_resolver_is_not_reached(h: &Harness) {
    let q = checksummed(query4(40040, HARD_CODED));
    assert_eq!(h.run_out(prog_names::TC_INGRESS, &q).0, TC_ACT_SHOT);
    assert_eq!(h.run_out(prog_names::XDP, &q).0, XDP_DROP);
}

/// Every check above, in order, on one harness each way (for the kernel
/// matrix, where each load takes seconds).
pub fn all() {
    let h = harness(true);
    tc_judge_rewrites_a_hard_coded_resolver_query_and_its_answer(&h);
    xdp_passes_the_query_for_tc_beside_it_to_rewrite(&h);
    only_port_53_to_other_resolvers_of_allowed_devices_is_redirected(&h);
    an_answer_is_rewritten_only_towards_the_mac_that_asked(&h);
    without_redirect_a_hard_coded_resolver_is_not_reached(&harness(false));
}
