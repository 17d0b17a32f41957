//! The lab around the guest: a router (the guest's network) with its IoT
//! bridge and resolver, a device on a bridge port, and an "internet" host.

use std::net::{IpAddr, Ipv4Addr};

use iotfence_tests::{dns::Dnsmasq, netns::Netns, privileged::TempDir, servers::Server};

/// Fresh names for the DNS trials, each for its own address: 340 in all.
pub fn fresh(i: usize) -> (String, IpAddr) {
    let addr = if i < 100 {
        Ipv4Addr::new(203, 0, 113, 129 + i as u8)
    } else {
        Ipv4Addr::new(198, 51, 100, 10 + (i - 100) as u8)
    };
    (format!("n{i}.fresh.vendor.example"), IpAddr::V4(addr))
}
pub const FRESH: usize = 340;

/// Router (the guest's network) with its IoT bridge, a device on one of
/// the bridge's ports and an "internet" host with an allowed and a
/// forbidden server.
pub struct Site {
    pub router: Netns,
    pub device: Netns,
    pub internet: Netns,
    _servers: [Server; 3],
    _dns: Dnsmasq,
    _dir: TempDir,
    pub mac: String,
}

pub fn site() -> Site {
    let router = Netns::new("svr").unwrap();
    let device = Netns::new("svd").unwrap();
    let internet = Netns::new("svi").unwrap();
    router.veth("eth1", "eth0", &device).unwrap();
    router.veth("wan", "eth0", &internet).unwrap();
    for (ns, cmds) in [
        (
            &router,
            vec![
                "link add br-iot type bridge",
                "link set eth1 master br-iot",
                "link set eth1 up",
                "addr add 192.0.2.1/24 dev br-iot",
                "addr add 2001:db8:1::1/64 dev br-iot nodad",
                "link set br-iot up",
                // Below 203.0.113.128/25, which the internet host answers as its own.
                "addr add 203.0.113.100/24 dev wan",
                "link set wan up",
                "route add 198.51.100.0/24 via 203.0.113.1",
            ],
        ),
        (
            &device,
            vec![
                "addr add 192.0.2.10/24 dev eth0",
                "link set eth0 up",
                "route add default via 192.0.2.1",
            ],
        ),
        (
            &internet,
            vec![
                "addr add 203.0.113.1/24 dev eth0",
                "addr add 203.0.113.2/24 dev eth0",
                "link set eth0 up",
                "route add default via 203.0.113.100",
                "route add local 203.0.113.128/25 dev lo",
                "route add local 198.51.100.0/24 dev lo",
            ],
        ),
    ] {
        ns.ips(&cmds).unwrap();
    }
    router.sysctl("net.ipv4.ip_forward", "1").unwrap();
    let servers = [
        Server::start(&internet, "203.0.113.1", 8883).unwrap(),
        Server::start(&internet, "203.0.113.2", 8883).unwrap(),
        Server::start_any(&internet, 443).unwrap(),
    ];
    // The router's resolver (in its namespace, which the guest shares).
    let dir = TempDir::new("svc").unwrap();
    let hosts: Vec<(String, IpAddr)> = (0..FRESH).map(fresh).collect();
    let dns = Dnsmasq::start(&router, &dir.0, &hosts, &[], 300).unwrap();
    let mac = device.link("eth0", false).unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    Site {
        router,
        device,
        internet,
        _servers: servers,
        _dns: dns,
        _dir: dir,
        mac,
    }
}
