//! Sending the probes from inside a device's namespace.

use std::{
    collections::BTreeSet,
    io::Read,
    net::{SocketAddr, TcpStream, UdpSocket},
};

use hickory_proto::rr::RecordType;
use iotfence_common::consts::PROTO_TCP;

use super::*;
use crate::{
    dns::Stub,
    lab::{Lab, ROUTER_IOT_IP},
};

/// Runs `probes` from inside the device's namespace; a failure description
/// per probe that did not go through.
pub fn run(lab: &Lab, device: &str, probes: Vec<Probe>) -> Vec<Result<(), String>> {
    lab.device(device)
        .run(move || {
            let mut stub = Stub::new(ROUTER_IOT_IP).expect("stub resolver");
            let mut resolved = BTreeSet::new();
            probes
                .iter()
                .map(|p| {
                    if let Some(name) = &p.resolve {
                        if resolved.insert(name.clone()) {
                            let got = stub.resolve(name, RecordType::A);
                            if got.as_deref() != Some(&[p.addr][..]) {
                                return Err(format!(
                                    "{LOOKUP}{name}: answer {got:?}, want {}",
                                    p.addr
                                ));
                            }
                        }
                    }
                    exchange(p).map_err(|e| format!("{}: {e}", p.what))
                })
                .collect()
        })
        .expect("device namespace thread")
}

pub fn exchange(p: &Probe) -> Result<(), String> {
    let target = SocketAddr::new(p.addr, p.port);
    if p.proto == PROTO_TCP {
        let mut s = TcpStream::connect_timeout(&target, T).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello)
            .map_err(|e| format!("no greeting: {e}"))?;
        return if &hello == b"hello" {
            Ok(())
        } else {
            Err("wrong greeting".into())
        };
    }
    let bind: SocketAddr = if p.addr.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    s.connect(target).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
    let token = format!("iotfence {}", p.what);
    s.send(token.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).map_err(|e| format!("no echo: {e}"))?;
    if &buf[..n] == token.as_bytes() {
        Ok(())
    } else {
        Err("wrong echo".into())
    }
}
