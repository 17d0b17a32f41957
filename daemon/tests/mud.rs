//! `iotfence mud import` / `mud export` (RFC 8520), without privileges:
//! every shipped vendor profile survives export -> import with the same
//! compiled allowlist; published MUD files (tests/fixtures/mud/, see its
//! README) import into profiles `iotfence check` passes, and import ->
//! export -> import is stable; exported files have the MUD modules' shape;
//! bad input gets a located error; the README's examples are real.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use iotfence::{
    config,
    mud::{model, validate},
    policy::{
        compile::{self, CompiledProfile},
        doc::{OneOrMany, PortSpec, ProtoSpec, RuleDoc},
        sources,
    },
};

mod readme;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/mud")
}

/// A scratch directory, removed on drop (also when an assertion fails).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("iotfence-mud-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn iotfence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotfence"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = iotfence(args);
    assert!(out.status.success(), "iotfence {}: {out:?}", args.join(" "));
    out
}

/// What a compiled profile allows, by destination (or source) and by
/// domain pattern, as (protocol, low, high) sets: comparable whatever the
/// rules' order and grouping.
type Allowed = BTreeMap<String, BTreeSet<(u8, u16, u16)>>;

fn allowed(p: &CompiledProfile) -> [Allowed; 3] {
    let mut out: [Allowed; 3] = Default::default();
    for (i, list) in [&p.egress, &p.inbound].into_iter().enumerate() {
        for (net, rs) in list {
            let set = out[i].entry(net.to_string()).or_default();
            set.extend(
                rs.rules[..rs.count as usize]
                    .iter()
                    .map(|r| (r.proto, r.lo, r.hi)),
            );
        }
    }
    for d in &p.domains {
        let set = out[2].entry(d.pattern.to_string()).or_default();
        set.extend(d.rules.iter().map(|r| (r.proto, r.lo, r.hi)));
    }
    out
}

fn compiled(site: &Path) -> BTreeMap<String, [Allowed; 3]> {
    let c = compile::load_path(site, &config::standalone(site))
        .unwrap_or_else(|d| panic!("{}: {d:?}", site.display()));
    c.profiles
        .iter()
        .map(|p| (p.name.clone(), allowed(p)))
        .collect()
}

/// The vars: block of the shipped site example, for sites of re-imported
/// profiles (which require the same variables).
fn site_example_vars() -> String {
    let text = std::fs::read_to_string(root().join("policies/site.example.yaml")).unwrap();
    let start = text.find("\nvars:\n").unwrap() + 1;
    let end = start + text[start..].find("\ndefault_profile:").unwrap();
    text[start..end].to_string()
}

#[test]
fn every_shipped_vendor_profile_round_trips() {
    let dir = tempdir("vendors");
    let site_example = root().join("policies/site.example.yaml");
    let before = compiled(&site_example);
    let mut includes = Vec::new();
    let mut profiles: Vec<&String> = before.keys().filter(|p| *p != "default").collect();
    profiles.sort();
    assert!(profiles.len() >= 7, "{profiles:?}");
    for p in &profiles {
        let json = dir.0.join(format!("{p}.json"));
        let yaml = dir.0.join(format!("{p}.yaml"));
        ok(&[
            "mud",
            "export",
            p,
            "--policy",
            "policies/site.example.yaml",
            "--mud-url",
            &format!("https://mud.example.com/{p}.json"),
            "-o",
            json.to_str().unwrap(),
        ]);
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(validate::check(&value), Vec::<String>::new(), "{p}");
        ok(&[
            "mud",
            "import",
            json.to_str().unwrap(),
            "--name",
            p,
            "-o",
            yaml.to_str().unwrap(),
        ]);
        includes.push(format!("  - {p}.yaml\n"));
    }
    // The shipped site with the re-imported profiles in place of the vendor files.
    let text = std::fs::read_to_string(&site_example).unwrap();
    let devices = &text[text.find("\ndefault_profile:").unwrap()..];
    let site = dir.0.join("site.yaml");
    std::fs::write(
        &site,
        format!(
            "include:\n{}\n{}{devices}",
            includes.concat(),
            site_example_vars()
        ),
    )
    .unwrap();
    ok(&["check", site.to_str().unwrap()]);
    let after = compiled(&site);
    for p in profiles {
        assert_eq!(
            before[p], after[p],
            "{p}: the re-imported profile allows something else"
        );
    }
}

/// Egress rules, inbound rules, blocks, required variables, limitations.
type Rules = (
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// The rules of one profile file, for comparing imports.
fn rules(file: &Path) -> Rules {
    let text = std::fs::read_to_string(file).unwrap();
    let src = sources::parse(file, &text).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(src.doc.profiles.len(), 1);
    let p = &src.doc.profiles.values().next().unwrap().value;
    let show = |r: &RuleDoc| {
        let list = |l: &Option<serde_saphyr::Spanned<OneOrMany<String>>>| {
            l.as_ref().map(|l| {
                l.value
                    .located(l.referenced)
                    .into_iter()
                    .map(|(_, s)| s.clone())
                    .collect::<Vec<_>>()
            })
        };
        let proto = match &r.proto.value {
            ProtoSpec::Name(n) => n.clone(),
            ProtoSpec::Number(n) => n.to_string(),
        };
        let ports = |l: &Option<serde_saphyr::Spanned<OneOrMany<PortSpec>>>| {
            l.as_ref().map(|l| {
                l.value
                    .located(l.referenced)
                    .into_iter()
                    .map(|(_, s)| format!("{s:?}"))
                    .collect::<Vec<_>>()
            })
        };
        format!(
            "{:?} {:?} {proto} {:?} {:?}",
            list(&r.to),
            list(&r.from),
            ports(&r.ports),
            ports(&r.types)
        )
    };
    let mut egress: Vec<String> = p.egress.iter().map(|r| show(&r.value)).collect();
    let mut inbound: Vec<String> = p.inbound.iter().map(|r| show(&r.value)).collect();
    egress.sort();
    inbound.sort();
    let uses = p.uses.iter().map(|u| u.value.clone()).collect();
    let requires = src.doc.requires.keys().cloned().collect();
    (egress, inbound, uses, requires, p.limitations.clone())
}

/// A site for one imported profile: its variables set to documentation
/// addresses, one device using it.
fn site_for(dir: &Path, profile_file: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(profile_file).unwrap();
    let src = sources::parse(profile_file, &text).unwrap();
    let mut site = format!(
        "include: [{}]\n",
        profile_file.file_name().unwrap().to_str().unwrap()
    );
    if !src.doc.requires.is_empty() {
        site.push_str("vars:\n");
        for (i, v) in src.doc.requires.keys().enumerate() {
            site.push_str(&format!(
                "  {v}: [192.0.2.{}/32, \"2001:db8:1::{:x}\"]\n",
                200 + i,
                200 + i
            ));
        }
    }
    site.push_str(&format!("devices:\n  - name: d1\n    mac: \"02:00:5e:10:00:99\"\n    ip: 192.0.2.99\n    profile: {name}\n"));
    let path = dir.join(format!("site-{name}.yaml"));
    std::fs::write(&path, site).unwrap();
    path
}

#[test]
fn published_mud_files_import_pass_check_and_round_trip() {
    let dir = tempdir("published");
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let stem = f.file_stem().unwrap().to_str().unwrap().to_string();
        let first = dir.0.join(format!("{stem}.yaml"));
        let out = ok(&[
            "mud",
            "import",
            f.to_str().unwrap(),
            "--name",
            &stem,
            "-o",
            first.to_str().unwrap(),
        ]);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("profile {stem}:")),
            "{out:?}"
        );
        let site = site_for(&dir.0, &first, &stem);
        let out = ok(&["check", site.to_str().unwrap()]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(": ok ("),
            "{out:?}"
        );

        let json = dir.0.join(format!("{stem}.json"));
        ok(&[
            "mud",
            "export",
            &stem,
            "--policy",
            first.to_str().unwrap(),
            "-o",
            json.to_str().unwrap(),
        ]);
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(validate::check(&value), Vec::<String>::new(), "{stem}");
        let original: model::MudFile = model::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(
            value["ietf-mud:mud"]["mud-url"], original.mud.mud_url,
            "{stem}: the export keeps the mud-url"
        );
        let second = dir.0.join(format!("{stem}-again.yaml"));
        ok(&[
            "mud",
            "import",
            json.to_str().unwrap(),
            "--name",
            &stem,
            "-o",
            second.to_str().unwrap(),
        ]);

        let (a, b) = (rules(&first), rules(&second));
        assert_eq!(
            (&a.0, &a.1, &a.2, &a.3),
            (&b.0, &b.1, &b.2, &b.3),
            "{stem}: the second import differs"
        );
        for l in &b.4 {
            assert!(
                a.4.contains(l),
                "{stem}: the second import adds the limitation {l:?}"
            );
        }
        let site2 = site_for(&dir.0, &second, &stem);
        assert_eq!(compiled(&site)[&stem], compiled(&site2)[&stem], "{stem}");
    }
}

#[test]
fn the_rfc_example_imports_to_what_it_says() {
    let dir = tempdir("rfc");
    let out = dir.0.join("lb.yaml");
    ok(&[
        "mud",
        "import",
        "tests/fixtures/mud/rfc8520-lightbulb2000.json",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (egress, inbound, uses, requires, limits) = rules(&out);
    // Outbound HTTPS to the cloud service, opened by the device; its
    // to-device ACE is that connection's answers, not a rule of its own.
    assert_eq!(
        egress,
        vec![r#"Some(["test.example.com"]) None tcp Some(["Number(443)"]) None"#]
    );
    assert!(inbound.is_empty(), "{inbound:?}");
    assert_eq!(uses, ["dhcp", "dns"]);
    assert!(requires.is_empty());
    assert!(
        limits
            .iter()
            .any(|l| l.starts_with("MUD ACE cl0-frdev: names its peer in an IPv6 ACL only")),
        "{limits:?}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("no rule needed): cl0-todev"), "{text}");
}

#[test]
fn what_a_profile_cannot_say_is_stated() {
    let dir = tempdir("limits");
    let out = dir.0.join("p.yaml");
    ok(&[
        "mud",
        "import",
        "tests/fixtures/mud/nist-unsw-tplinkplug.json",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (egress, inbound, uses, requires, limits) = rules(&out);
    assert_eq!(egress.len(), 10, "{egress:?}");
    assert_eq!(
        inbound,
        vec![r#"None Some(["$mud_local_networks"]) tcp Some(["Number(9999)"]) None"#]
    );
    // DHCP to the gateway and DNS to the registered controller are the blocks.
    assert_eq!(uses, ["dhcp", "dns"]);
    assert_eq!(requires, ["mud_local_networks"]);
    for want in [
        "The ACLs are under the pre-RFC 8519 name",
        "MUD ACE from-ipv4-tplinkplug-4: also matches eth;",
        "MUD ACE from-ipv4-tplinkplug-4: matches 255.255.255.255/32 and local-networks together",
        "The Ethernet ACL from-ethernet-tplinkplug (ACEs from-ethernet-tplinkplug-0)",
        "names its peer in an IPv4 ACL only",
        "MUD ACE from-ipv4-tplinkplug-9: allows DNS over UDP; `use: [dns]` also allows TCP port 53",
    ] {
        assert!(
            limits.iter().any(|l| l.contains(want)),
            "{want:?} not in {limits:#?}"
        );
    }
    // Constructs the profile cannot hold, each named by its ACE.
    let mud = r#"{"ietf-mud:mud": {"mud-version": 1, "mud-url": "https://x.example.com/dev", "last-update": "2019-01-28T11:20:51+01:00", "is-supported": false,
      "from-device-policy": {"access-lists": {"access-list": [{"name": "fr"}]}}},
      "ietf-access-control-list:acls": {"acl": [{"name": "fr", "type": "ipv4-acl-type", "aces": {"ace": [
        {"name": "flags", "matches": {"ipv4": {"protocol": 6, "dscp": 10, "destination-ipv4-network": "198.51.100.0/24"}, "tcp": {"flags": "syn", "source-port": {"operator": "eq", "port": 5000}, "destination-port": {"operator": "neq", "port": 80}}}, "actions": {"forwarding": "accept"}},
        {"name": "local", "matches": {"ietf-mud:mud": {"local-networks": null}, "udp": {"destination-port": {"port": 5000}}}, "actions": {"forwarding": "accept"}},
        {"name": "deny", "matches": {"ipv4": {"destination-ipv4-network": "203.0.113.0/24"}}, "actions": {"forwarding": "drop"}},
        {"name": "code", "matches": {"ipv4": {"dst-dnsname-typo": "a.example.com", "protocol": 1}, "icmp": {"type": 3, "code": 4}}, "actions": {"forwarding": "accept"}}
      ]}}]}}"#;
    let f = dir.0.join("odd.json");
    std::fs::write(&f, mud).unwrap();
    ok(&[
        "mud",
        "import",
        f.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let (egress, _, _, _, limits) = rules(&out);
    // neq 80 is two ranges; the source port is not checked.
    assert_eq!(
        egress,
        vec![
            r#"Some(["$mud_local_networks"]) None udp Some(["Number(5000)"]) None"#,
            r#"Some(["0.0.0.0/0"]) None icmp None Some(["Number(3)"])"#,
            r#"Some(["198.51.100.0/24"]) None tcp Some(["Range(\"0-79\")"]) None"#,
            r#"Some(["198.51.100.0/24"]) None tcp Some(["Range(\"81-65535\")"]) None"#,
        ]
    );
    for want in [
        "is-supported is false",
        "MUD ACE flags: also matches the IP header's dscp;",
        "MUD ACE flags: also matches the TCP header's flags;",
        "MUD ACE flags: also matches the device's source port",
        "MUD ACE deny: denies traffic (drop or reject): not imported",
        "MUD ACE code: also matches the IP header's dst-dnsname-typo;",
        "MUD ACE code: matches ICMP code 4;",
    ] {
        assert!(
            limits.iter().any(|l| l.contains(want)),
            "{want:?} not in {limits:#?}"
        );
    }
}

#[test]
fn bad_input_gets_a_located_error() {
    let dir = tempdir("bad");
    let f = dir.0.join("bad.json");
    let out = dir.0.join("never.yaml");
    let cases = [
        ("{\n  \"ietf-mud:mud\": {\n    \"mud-version\": 1,,\n", "bad.json:3:22: error: key must be a string"),
        ("{\"ietf-mud:mud\": {\"mud-version\": \"one\"}}", "bad.json:1:"),
        ("{\"ietf-mud:mud\": {\"mud-version\": 2, \"mud-url\": \"https://a.example.com/b\", \"last-update\": \"x\", \"is-supported\": true}}", "mud-version 2"),
        ("{\"ietf-mud:mud\": {\"mud-version\": 1, \"mud-url\": \"https://a.example.com/b\", \"last-update\": \"x\", \"is-supported\": true, \"from-device-policy\": {\"access-lists\": {\"access-list\": [{\"name\": \"nope\"}]}}}}", "names the ACL nope, which the file does not define"),
        ("{\"ietf-mud:mud\": {\"mud-version\": 1, \"mud-url\": \"https://a.example.com/b\", \"last-update\": \"x\", \"is-supported\": true, \"from-device-policy\": {\"access-lists\": {\"access-list\": [{\"name\": \"a\"}]}}}, \"ietf-access-control-list:acls\": {\"acl\": [{\"name\": \"a\", \"type\": \"ipv4-acl-type\", \"aces\": {\"ace\": [{\"name\": \"x\", \"matches\": {\"udp\": {\"destination-port\": {\"operator\": \"lt\", \"port\": 9}}}, \"actions\": {\"forwarding\": \"accept\"}}]}}]}}", "ACL a, ACE x: port operator `lt`"),
        ("[]", "bad.json:1:"),
        ("", "bad.json:1:0: error: EOF"),
    ];
    for (text, want) in cases {
        std::fs::write(&f, text).unwrap();
        let r = iotfence(&[
            "mud",
            "import",
            f.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(65), "{text}: {err}");
        assert!(err.contains(want), "{text}: want {want:?} in {err}");
        assert!(!out.exists(), "{text}: wrote output");
    }
    let r = iotfence(&[
        "mud",
        "export",
        "no-such-profile",
        "--policy",
        "policies/site.example.yaml",
    ]);
    assert_eq!(r.status.code(), Some(65));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("no profile `no-such-profile`"),
        "{r:?}"
    );
}

/// Every leaf of `v`, by JSON pointer.
fn leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
            leaves(
                x,
                format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| leaves(x, format!("{at}/{i}"), out)),
        _ => out.push(at),
    }
}

#[test]
fn odd_values_are_refused_or_stated_never_a_panic() {
    // Each leaf of each published file replaced by values of other types
    // and out of range: import returns a profile or an error, and what it
    // returns compiles (the self-check `mud import` runs before writing).
    let odd = [
        serde_json::json!(null),
        serde_json::json!(-1),
        serde_json::json!(70000),
        serde_json::json!(""),
        serde_json::json!("*"),
        serde_json::json!("::/0"),
        serde_json::json!([null]),
        serde_json::json!({}),
    ];
    let mut tried = 0;
    for name in [
        "rfc8520-lightbulb2000.json",
        "nist-local-and-same-mfg-test.json",
        "mudmaker-inspextor.json",
    ] {
        let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut at = Vec::new();
        leaves(&value, String::new(), &mut at);
        for p in &at {
            for o in &odd {
                let mut v = value.clone();
                *v.pointer_mut(p).unwrap() = o.clone();
                let text = serde_json::to_string(&v).unwrap();
                if let Ok(mud) = model::parse(&text) {
                    if let Ok(profile) = iotfence::mud::import::import(&mud, None) {
                        let yaml = iotfence::mud::yaml::render(&profile, name);
                        let vars: Vec<&String> = profile.requires.keys().collect();
                        let r = iotfence::mud::cli::self_check(Path::new(name), &yaml, &vars);
                        assert!(r.is_ok(), "{p} = {o}: {r:?}\n{yaml}");
                    }
                }
                tried += 1;
            }
        }
    }
    assert!(tried > 500, "{tried}");
}

#[test]
fn the_shape_check_catches_what_it_checks() {
    let rfc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("rfc8520-lightbulb2000.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(validate::check(&rfc), Vec::<String>::new());
    let broken = |f: &dyn Fn(&mut serde_json::Value), want: &str| {
        let mut v = rfc.clone();
        f(&mut v);
        let problems = validate::check(&v);
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{want:?} not in {problems:?}"
        );
    };
    broken(
        &|v| {
            v["ietf-mud:mud"].as_object_mut().unwrap().remove("mud-url");
        },
        "the mandatory leaf `mud-url` is missing",
    );
    broken(
        &|v| v["ietf-mud:mud"]["mud-url"] = "http://lighting.example.com/x".into(),
        "https scheme",
    );
    broken(
        &|v| v["ietf-mud:mud"]["last-update"] = "2019-01-28".into(),
        "is not a yang:date-and-time",
    );
    broken(
        &|v| v["ietf-mud:mud"]["cache-validity"] = 200.into(),
        "cache-validity: is not an integer in 1..168",
    );
    broken(
        &|v| {
            v["ietf-mud:mud"]["from-device-policy"]["access-lists"]["access-list"][0]["name"] =
                "gone".into()
        },
        "names the ACL `gone`",
    );
    let ace = "/ietf-access-control-list:acls/acl/1/aces/ace/0/matches";
    broken(
        &|v| {
            v.pointer_mut(ace).unwrap()["ipv6"]["ietf-acldns:dst-dnsname"] = "*.example.com".into()
        },
        "is not a domain name",
    );
    broken(
        &|v| {
            v.pointer_mut(ace).unwrap()["ipv6"]["destination-ipv6-network"] = "2001:db8::/32".into()
        },
        "are cases of one choice",
    );
    broken(
        &|v| v.pointer_mut(ace).unwrap()["ipv4"] = serde_json::json!({}),
        "in an ACL of another type",
    );
    broken(
        &|v| v.pointer_mut(ace).unwrap()["eth"] = serde_json::json!({}),
        "in an ACL of a type without Ethernet matches",
    );
    broken(
        &|v| v["ietf-access-control-list:acls"]["acl"][1]["name"] = "x".repeat(65).into(),
        "is not 1 to 64 characters",
    );
    broken(
        &|v| v.pointer_mut(ace).unwrap()["udp"] = serde_json::json!({}),
        "one l4 choice",
    );
    broken(
        &|v| v.pointer_mut(ace).unwrap()["tcp"]["ietf-mud:direction-initiated"] = "sideways".into(),
        "is not from-device or to-device",
    );
    broken(
        &|v| {
            v.pointer_mut(ace).unwrap()["tcp"]["destination-port"] =
                serde_json::json!({"lower-port": 9, "upper-port": 3})
        },
        "lower first",
    );
    broken(
        &|v| v.pointer_mut(ace).unwrap()["tcp"]["destination-port"]["operator"] = "lt".into(),
        "is not lte, gte, eq or neq",
    );
    broken(
        &|v| v.pointer_mut(ace).unwrap()["ipv6"]["colour"] = "blue".into(),
        "unknown member `colour`",
    );
    broken(
        &|v| {
            v["ietf-access-control-list:acls"]["acl"][1]["aces"]["ace"][0]["actions"]
                ["forwarding"] = "maybe".into()
        },
        "not accept, drop or reject",
    );
    // A pre-RFC 8519 file is not of the RFC's shape.
    let draft: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("nist-unsw-tplinkplug.json")).unwrap(),
    )
    .unwrap();
    assert!(validate::check(&draft)
        .iter()
        .any(|p| p.contains("unknown member `ietf-access-control-list:access-lists`")));
}

#[test]
fn export_reads_the_daemons_configuration() {
    let dir = tempdir("config");
    let cfg = dir.0.join("iotfence.yaml");
    let site = root().join("policies/site.example.yaml");
    std::fs::write(
        &cfg,
        format!(
            "interfaces: [iot0]\npolicy: {}\nresolvers: [192.0.2.1]\n",
            site.display()
        ),
    )
    .unwrap();
    let when = "2026-12-03T00:00:00Z";
    let by_config = ok(&[
        "mud",
        "export",
        "weiss-simpati-gateway",
        "--config",
        cfg.to_str().unwrap(),
        "--last-update",
        when,
    ]);
    let by_policy = ok(&[
        "mud",
        "export",
        "weiss-simpati-gateway",
        "--policy",
        site.to_str().unwrap(),
        "--last-update",
        when,
    ]);
    assert!(String::from_utf8_lossy(&by_config.stdout)
        .contains("\"last-update\": \"2026-12-03T00:00:00Z\""));
    assert_eq!(by_config.stdout, by_policy.stdout);
    std::fs::write(&cfg, "interfaces: [iot0]\n").unwrap();
    let r = iotfence(&[
        "mud",
        "export",
        "weiss-simpati-gateway",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(65), "{r:?}");
}

#[test]
fn the_readmes_mud_examples_are_real() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut checked = 0;
    let mut lines = readme.lines().peekable();
    while let Some((cmd, want)) = readme::next(&mut lines, "mud") {
        let mut args = vec!["mud"];
        args.extend(cmd.split_whitespace());
        let out = ok(&args);
        // stdout, then what the command says on stderr.
        let got = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(got, want, "`iotfence mud {cmd}`");
        checked += 1;
        // A command writing a file is followed by an excerpt of it: its
        // lines (`...` skips) appear in the file in this order.
        let Some(file) = args.windows(2).find(|w| w[0] == "--output").map(|w| w[1]) else {
            continue;
        };
        let written = std::fs::read_to_string(file).unwrap();
        let _ = std::fs::remove_file(file);
        while lines.peek().is_some_and(|l| *l != "```json") {
            lines.next();
        }
        lines.next();
        let mut at = 0;
        for l in lines.by_ref().take_while(|l| *l != "```") {
            if l.trim() == "..." {
                continue;
            }
            let line = format!("{l}\n");
            match written[at..].find(&line) {
                Some(i) => at += i + line.len(),
                None => panic!("the README's excerpt of {file}: {l:?} is not in the file (after what came before)"),
            }
        }
        assert!(at > 0, "no excerpt of {file}");
    }
    assert!(checked >= 2, "the README shows {checked} mud examples");
}
