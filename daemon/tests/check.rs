//! `iotfence check`: valid files pass, broken ones get file:line:column
//! messages and exit code 65, and nothing needs privileges.

use std::{path::Path, process::Command};

fn check(dir: &Path, policy: &str) -> (i32, String) {
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
    std::fs::write(
        dir.join("iotfence.yaml"),
        "interfaces: [iot0]\npolicy: policy.yaml\nresolvers: [192.0.2.1]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iotfence"))
        .args(["check", "--config"])
        .arg(dir.join("iotfence.yaml"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

/// A scratch directory, removed on drop (also when an assertion fails).
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("iotfence-check-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

#[test]
fn valid_policy_passes() {
    let d = tempdir("ok");
    let (code, out) = check(
        &d,
        "profiles:\n  cam:\n    use: [dhcp, dns]\n    egress:\n      - to: [198.51.100.0/24, 2001:db8:ff::/64]\n        proto: tcp\n        ports: [443, \"8000-8100\"]\ndevices:\n  - name: c1\n    mac: 02:00:5e:10:00:01\n    profile: cam\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (2 profiles, 1 devices"), "{out}");
}

#[test]
fn every_problem_is_located() {
    let d = tempdir("bad");
    let policy = "\
profiles:
  cam:
    mode: learn
    egress:
      - to: [198.51.100.0/24, 10.0.0.1/8]
        proto: tcp
      - to: 198.51.100.7
        proto: udp
        ports: [53, 70000]
      - to: 198.51.100.8
        proto: icmp
        ports: 80
devices:
  - name: a
    mac: 01:00:5e:10:00:01
    profile: nope
  - name: b
    profile: cam
";
    let (code, out) = check(&d, policy);
    assert_eq!(code, 65, "{out}");
    let p = d.join("policy.yaml").display().to_string();
    for want in [
        format!("{p}:3:11: error: unknown mode `learn`"),
        format!("{p}:5:31: error: `10.0.0.1/8` has host bits set"),
        format!("{p}:9:21: error: 70000 is out of range (0 to 65535)"),
        format!("{p}:12:16: error: this protocol has no ports"),
        format!("{p}:15:10: error: `01:00:5e:10:00:01` is a multicast MAC address"),
        format!("{p}:16:14: error: profile `nope` is not defined"),
        format!("{p}:17:5: error: device `b` has neither `mac` nor `ip`"),
    ] {
        assert!(out.contains(&want), "missing `{want}` in:\n{out}");
    }
    assert!(out.contains("7 problem(s); nothing was changed"), "{out}");
}

#[test]
fn yaml_syntax_and_unknown_keys_are_located() {
    let d = tempdir("syntax");
    let (code, out) = check(
        &d,
        "profiles:\n  cam:\n    egres:\n      - to: 198.51.100.1\n",
    );
    assert_eq!(code, 65, "{out}");
    assert!(
        out.contains("policy.yaml:3:5: error:") && out.contains("egres"),
        "{out}"
    );
    let (code, out) = check(&d, "profiles: [\n");
    assert_eq!(code, 65, "{out}");
    assert!(out.contains("policy.yaml:"), "{out}");
}

#[test]
fn domain_patterns_are_checked() {
    let d = tempdir("domains");
    let policy = "\
profiles:
  gw:
    egress:
      - to: [api.casambi.com, \"*.com\", \"*\", \"a.*.example.com\"]
        proto: tcp
        ports: 443
    inbound:
      - from: [\"*.casambi.com\"]
        proto: tcp
        ports: 80
";
    let (code, out) = check(&d, policy);
    assert_eq!(code, 65, "{out}");
    let p = d.join("policy.yaml").display().to_string();
    for want in [
        format!("{p}:4:31: error: `*.com` would allow every name under a top-level domain"),
        format!("{p}:4:40: error: `*` would allow every name"),
        format!("{p}:4:45: error: `a.*.example.com`: `*` may only stand alone"),
        format!("{p}:8:16: error: `*.casambi.com`: inbound sources must be addresses or CIDRs"),
    ] {
        assert!(out.contains(&want), "missing `{want}` in:\n{out}");
    }
    assert!(out.contains("4 problem(s)"), "{out}");
}

fn check_path(path: &Path, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iotfence"));
    cmd.arg("check").arg(path);
    if json {
        cmd.args(["--format", "json"]);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

/// The shipped example site, with every vendor profile it includes, passes
/// with no warnings; and every vendor file is part of it.
#[test]
fn shipped_policies_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let (code, out) = check_path(&root.join("site.example.yaml"), false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" 0 warnings"), "{out}");
    let site = std::fs::read_to_string(root.join("site.example.yaml")).unwrap();
    for f in std::fs::read_dir(root.join("vendors")).unwrap() {
        let name = f.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            assert!(
                site.contains(&format!("vendors/{name}")),
                "{name} is not in the example site"
            );
        }
    }
}

/// Includes (files and directories), site variables, the `ntp` block and
/// per-device overrides; problems are located in the file they are in.
#[test]
fn includes_and_variables() {
    let d = tempdir("include");
    std::fs::create_dir_all(d.join("vendors")).unwrap();
    std::fs::write(
        d.join("vendors/printer.yaml"),
        "requires:\n  printers:\n    description: the printer subnet\n    kind: networks\nprofiles:\n  dca:\n    use: [dns, ntp]\n    limitations: [\"URL paths cannot be enforced\"]\n    egress:\n      - to: \"$printers\"\n        proto: udp\n        ports: 161\n      - to: [\"*.mpsmonitor.com\"]\n        proto: tcp\n        ports: 443\n",
    )
    .unwrap();
    let site = d.join("site.yaml");
    std::fs::write(
        &site,
        "include: [vendors]\nvars:\n  printers: [192.0.2.128/26]\n  ntp_servers: [192.0.2.1]\ndevices:\n  - name: dca-1\n    mac: 02:00:5e:10:00:01\n    profile: dca\n  - name: dca-2\n    mac: 02:00:5e:10:00:02\n    profile: dca\n    mode: audit\n    egress:\n      - to: 203.0.113.9\n        proto: tcp\n        ports: 22\n",
    )
    .unwrap();
    let (code, out) = check_path(&site, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok (3 profiles, 2 devices, 2 files, 0 warnings, 1 known limitations)"),
        "{out}"
    );

    // A missing include is reported where it is named (and alone: what it
    // would define is unknown).
    std::fs::write(&site, "include: [vendors/printer.yaml, missing.yaml]\n").unwrap();
    let (code, out) = check_path(&site, false);
    assert_eq!(code, 65, "{out}");
    let s = site.display().to_string();
    assert!(
        out.contains(&format!("{s}:1:33: error: cannot read policy")),
        "{out}"
    );
    // Unset variable, a name where networks are required.
    std::fs::write(
        &site,
        "include: [vendors/printer.yaml]\nvars:\n  printers: [printers.example.com]\ndevices:\n  - name: dca-1\n    mac: 02:00:5e:10:00:01\n    profile: dca\n",
    )
    .unwrap();
    let (code, out) = check_path(&site, false);
    assert_eq!(code, 65, "{out}");
    let v = d.join("vendors/printer.yaml").display().to_string();
    for want in [
        format!("{s}:3:14: error: `printers` holds networks, and `printers.example.com` is a name"),
        format!(
            "{v}:7:16: error: `ntp` sends to the site variable `ntp_servers`, which is not set"
        ),
    ] {
        assert!(out.contains(&want), "missing `{want}` in:\n{out}");
    }
    // JSON for machines, with severities.
    let (code, out) = check_path(&site, true);
    assert_eq!(code, 65);
    assert!(out.contains("\"severity\": \"error\""), "{out}");
}

#[test]
fn lints() {
    let d = tempdir("lints");
    let p = d.join("p.yaml");
    std::fs::write(
        &p,
        "profiles:\n  a:\n    egress:\n      - to: 0.0.0.0/0\n        proto: tcp\n        ports: 443\n  unused:\n    egress:\n      - to: 2001:db8:ff::/64\n        proto: icmp\ndevices:\n  - name: x\n    mac: 02:00:5e:10:00:01\n    ip: 192.0.2.0/28\n    profile: a\n  - name: y\n    ip: 192.0.2.5\n    profile: a\n",
    )
    .unwrap();
    let (code, out) = check_path(&p, false);
    assert_eq!(code, 65, "{out}");
    let s = p.display().to_string();
    for want in [
        format!("{s}:4:13: warning: `0.0.0.0/0` allows every destination"),
        format!("{s}:8:5: warning: profile `unused` is not used by any device"),
        format!("{s}:9:13: error: 2001:db8:ff::/64: icmp to an IPv6 destination can never match"),
        format!("{s}:17:9: error: 192.0.2.5/32 overlaps device `x`"),
    ] {
        assert!(out.contains(&want), "missing `{want}` in:\n{out}");
    }
    assert!(out.contains("2 problem(s)"), "{out}");
}
