//! The shipped JSON Schema is the one generated from the policy types, and
//! it accepts every shipped policy file and rejects what the compiler does.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&iotfence::policy::doc::schema()).unwrap();
    jsonschema::validator_for(&schema).expect("the generated schema is a valid JSON Schema")
}

fn yaml(text: &str) -> serde_json::Value {
    serde_saphyr::from_str(text).expect("YAML parses")
}

#[test]
fn shipped_schema_is_the_generated_one() {
    let path = repo().join("policies/policy.schema.json");
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == iotfence::policy::doc::schema(),
        "{} is out of date: run `cargo run -p iotfence -- schema > policies/policy.schema.json`",
        path.display()
    );
}

#[test]
fn every_shipped_policy_file_validates() {
    let v = validator();
    let mut files = vec![repo().join("policies/site.example.yaml")];
    for e in std::fs::read_dir(repo().join("policies/vendors")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            files.push(p);
        }
    }
    assert!(files.len() >= 6, "vendor library missing: {files:?}");
    for f in files {
        let doc = yaml(&std::fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

/// Each mistake the schema is meant to catch while typing, with the path
/// the editor would underline.
#[test]
fn schema_rejects_what_the_compiler_rejects() {
    let v = validator();
    let cases = [
        ("profiles: {p: {mode: block}}", "/profiles/p/mode"),
        ("profiles: {p: {use: [smtp]}}", "/profiles/p/use/0"),
        (
            "profiles: {p: {egress: [{to: 198.51.100.1, proto: tcp, ports: 70000}]}}",
            "/profiles/p/egress/0/ports",
        ),
        (
            "profiles: {p: {egress: [{to: 198.51.100.1, proto: tcp, ports: [80, 'http']}]}}",
            "/profiles/p/egress/0/ports",
        ),
        (
            "profiles: {p: {egress: [{to: 198.51.100.1, proto: gre}]}}",
            "/profiles/p/egress/0/proto",
        ),
        (
            "profiles: {p: {egress: [{to: 198.51.100.1}]}}",
            "/profiles/p/egress/0",
        ),
        (
            "devices: [{name: a, profile: p, colour: red}]",
            "/devices/0",
        ),
        ("devices: [{name: a}]", "/devices/0"),
        ("requires: {x: {kind: subnets}}", "/requires/x/kind"),
        ("profile: {}", ""),
    ];
    for (text, path) in cases {
        let doc = yaml(text);
        let paths: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| e.instance_path().to_string())
            .collect();
        assert!(
            paths.iter().any(|p| p == path),
            "`{text}`: expected an error at `{path}`, got {paths:?}"
        );
    }
    // And the forms people write are accepted.
    let ok = "profiles: {p: {mode: audit, use: [dhcp, dns, ntp], egress: [\
              {to: [api.example.com, 198.51.100.0/24], proto: tcp, ports: [443, '8000-8100']},\
              {to: 203.0.113.1, proto: 47}, {to: 203.0.113.1, proto: icmp, types: 8}]}}\n\
              devices: [{name: a, mac: '02:00:00:00:00:01', ip: 192.0.2.10, profile: p}]";
    let errors: Vec<String> = v.iter_errors(&yaml(ok)).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
