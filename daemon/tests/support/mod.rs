//! Shared by the DNS learning tests: a profile, a route and message builders.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::net::IpAddr;

use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{
        rdata::{A, AAAA, CNAME},
        Name, RData, Record, RecordType,
    },
};
use iotfence::{
    dns::{
        learn::Route,
        pending::{Pending, QueryKey},
    },
    policy::{compile::DomainRule, pattern::Pattern},
};
use iotfence_common::{consts::PROTO_TCP, PortRule};

pub fn rules() -> Vec<DomainRule> {
    vec![DomainRule {
        pattern: Pattern::parse("*.vendor.example").unwrap(),
        rules: vec![PortRule::new(PROTO_TCP, 443, 443)],
    }]
}

pub fn route() -> Route {
    Route {
        device: 1,
        resolver: "192.0.2.1".parse().unwrap(),
        client: "192.0.2.10".parse().unwrap(),
        client_port: 40000,
    }
}

pub fn pending_for(id: u16, name: &str) -> Pending {
    let mut p = Pending::new(1000, 100, 10_000_000_000);
    let r = route();
    p.record(
        QueryKey {
            client: r.client,
            port: r.client_port,
            resolver: r.resolver,
            id,
        },
        iotfence::policy::pattern::normalize(name),
        r.device,
        0,
    );
    p
}

pub fn a(name: &str, ip: &str, ttl: u32) -> Record {
    let addr: IpAddr = ip.parse().unwrap();
    let data = match addr {
        IpAddr::V4(v) => RData::A(A(v)),
        IpAddr::V6(v) => RData::AAAA(AAAA(v)),
    };
    Record::from_rdata(Name::from_ascii(name).unwrap(), ttl, data)
}

pub fn cname(name: &str, target: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        60,
        RData::CNAME(CNAME(Name::from_ascii(target).unwrap())),
    )
}

pub fn answer(id: u16, qname: &str, records: Vec<Record>, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::response(id, OpCode::Query);
    m.metadata.response_code = rcode;
    m.add_query(Query::query(
        Name::from_ascii(qname).unwrap(),
        RecordType::A,
    ));
    for r in records {
        m.add_answer(r);
    }
    m.to_vec().unwrap()
}
