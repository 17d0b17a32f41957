//! Writes the fuzz targets' seed corpora (`cargo run -p iotfence-tests
//! --bin iotfence-seeds -- fuzz/corpus`): the fixture table as short frame
//! sequences for `datapath`, the shipped policies for `policy`, and DNS
//! exchanges for `dns_learn`. `cargo fuzz cmin` then keeps what adds
//! coverage; the result is committed.

use std::{fs, path::Path};

use hickory_proto::{
    op::{Message, OpCode, Query, ResponseCode},
    rr::{
        rdata::{A, AAAA, CNAME},
        Name, RData, Record, RecordType,
    },
};
use iotfence_tests::{
    differential::{encode, Op},
    fixtures::{self, Step},
    fuzz_dns,
    harness::Hook,
};

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: iotfence-seeds CORPUS_DIR"))?;
    let out = Path::new(&out);
    let write = |target: &str, name: String, data: &[u8]| -> anyhow::Result<()> {
        let dir = out.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), data)?;
        Ok(())
    };
    for (i, seed) in datapath().iter().enumerate() {
        write("datapath", format!("seed-{i:03}"), seed)?;
    }
    for (name, text) in policies()? {
        write("policy", format!("seed-{name}"), text.as_bytes())?;
    }
    for (i, seed) in dns().iter().enumerate() {
        write("dns_learn", format!("seed-{i:02}"), seed)?;
    }
    Ok(())
}

/// Each judged fixture with the (up to three) steps before it, whose
/// flows it may rely on; and each alone through TC ingress.
fn datapath() -> Vec<Vec<u8>> {
    let mut seq: Vec<(Op, Vec<u8>, bool)> = Vec::new();
    for step in fixtures::table() {
        match step {
            Step::Judge {
                packet, xdp_only, ..
            } => seq.push((Op::Judge(Hook::Xdp), packet, xdp_only)),
            Step::Observe { packet, .. } => seq.push((Op::Observe, packet, false)),
            // Differential::new writes the table's learned entries.
            Step::Learn { .. } => {}
        }
    }
    let mut seeds = Vec::new();
    for (i, (op, frame, xdp_only)) in seq.iter().enumerate() {
        if *op == Op::Observe {
            continue;
        }
        let window: Vec<(Op, &[u8])> = seq[i.saturating_sub(3)..=i]
            .iter()
            .map(|(o, f, _)| (*o, f.as_slice()))
            .collect();
        seeds.push(encode(&window));
        if !xdp_only {
            seeds.push(encode(&[(Op::Judge(Hook::TcIngress), frame)]));
        }
    }
    seeds
}

/// The fixture policy, the example site, and each vendor file alone and
/// with the example site's variables (so it compiles).
fn policies() -> anyhow::Result<Vec<(String, String)>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let site = fs::read_to_string(root.join("site.example.yaml"))?;
    let vars = site
        .split_once("\nvars:")
        .map(|(_, rest)| format!("\nvars:{}", rest.split("\n\n\n").next().unwrap_or(rest)))
        .unwrap_or_default();
    let mut out = vec![
        ("fixture".to_string(), fixtures::POLICY.to_string()),
        ("site".to_string(), site.clone()),
    ];
    for e in fs::read_dir(root.join("vendors"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&p)?;
            out.push((format!("{stem}-with-vars"), format!("{text}{vars}")));
            out.push((stem, text));
        }
    }
    Ok(out)
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn record(owner: &str, data: RData) -> Record {
    Record::from_rdata(name(owner), 60, data)
}

fn a(owner: &str, ip: &str) -> Record {
    record(owner, RData::A(A(ip.parse().unwrap())))
}

fn message(id: u16, qname: &str, answers: Vec<Record>, rcode: Option<ResponseCode>) -> Vec<u8> {
    let mut m = match rcode {
        Some(code) => {
            let mut m = Message::response(id, OpCode::Query);
            m.metadata.response_code = code;
            m
        }
        None => Message::query(),
    };
    m.metadata.id = id;
    m.add_query(Query::query(name(qname), RecordType::A));
    for r in answers {
        m.add_answer(r);
    }
    m.to_vec().unwrap()
}

fn dns() -> Vec<Vec<u8>> {
    let q = message(7, "a.vendor.example", vec![], None);
    let ok = |answers| message(7, "a.vendor.example", answers, Some(ResponseCode::NoError));
    let pats = ["*.vendor.example", "cdn.example", "**.other.example"];
    vec![
        fuzz_dns::encode(&q, &pats, &ok(vec![a("a.vendor.example", "198.51.100.7")])),
        fuzz_dns::encode(
            &q,
            &pats,
            &ok(vec![
                record(
                    "a.vendor.example",
                    RData::CNAME(CNAME(name("edge.cdn.example"))),
                ),
                a("edge.cdn.example", "198.51.100.8"),
                record(
                    "edge.cdn.example",
                    RData::AAAA(AAAA("2001:db8:ff::8".parse().unwrap())),
                ),
                a("evil.example", "203.0.113.1"),
            ]),
        ),
        fuzz_dns::encode(
            &q,
            &pats,
            &ok((0..12)
                .map(|i| a("a.vendor.example", &format!("203.0.113.{i}")))
                .collect()),
        ),
        fuzz_dns::encode(
            &q,
            &pats,
            &message(7, "a.vendor.example", vec![], Some(ResponseCode::NXDomain)),
        ),
        fuzz_dns::encode(
            &q,
            &["other.example"],
            &ok(vec![a("a.vendor.example", "198.51.100.7")]),
        ),
        fuzz_dns::encode(
            &q,
            &pats,
            &message(
                8,
                "a.vendor.example",
                vec![a("a.vendor.example", "198.51.100.7")],
                Some(ResponseCode::NoError),
            ),
        ),
    ]
}
