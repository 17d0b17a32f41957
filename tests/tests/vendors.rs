//! The vendor policy library in the lab (see `iotfence_tests::vendor_site`):
//! every endpoint a vendor profile allows is reached, and a name, a port
//! and an address it does not allow are dropped and counted (audit
//! profiles: passed and counted as audited). Also, without the lab: the
//! README's policy excerpts are the shipped files' own lines, and
//! `ENDPOINTS.md` repeats every profile's limitations.

use std::{collections::BTreeMap, path::Path};

use iotfence_common::{reason::REASONS, Verdict};
use iotfence_tests::{
    lab::{DeviceSpec, Lab},
    vendor_site::{self, run, Plan, DEVICES, LOOKUP},
};

fn audited(lab: &Lab, id: u32) -> u64 {
    REASONS
        .iter()
        .map(|r| lab.counter(id, Verdict::Audited, *r))
        .sum()
}

/// Every required endpoint is reached without a drop or an audit; each
/// forbidden probe fails and is counted as a drop (enforce) or passes and is
/// counted as audited (audit).
fn check(lab: &Lab, plan: &Plan) -> Vec<String> {
    let tag = format!("{} ({}, id {})", plan.profile, plan.device, plan.id);
    let mut failures = Vec::new();
    let (dropped0, audited0) = (lab.dropped(plan.id), audited(lab, plan.id));
    for r in run(lab, plan.device, plan.required.clone()) {
        if let Err(e) = r {
            failures.push(format!("{tag}: required {e}"));
        }
    }
    let (dropped1, audited1) = (lab.dropped(plan.id), audited(lab, plan.id));
    if dropped1 != dropped0 || audited1 != audited0 {
        failures.push(format!(
            "{tag}: required endpoints caused {} drops and {} audits",
            dropped1 - dropped0,
            audited1 - audited0
        ));
    }
    for p in &plan.forbidden {
        let before = if plan.audit {
            audited(lab, plan.id)
        } else {
            lab.dropped(plan.id)
        };
        let got = run(lab, plan.device, vec![p.clone()]).remove(0);
        let after = if plan.audit {
            audited(lab, plan.id)
        } else {
            lab.dropped(plan.id)
        };
        match (plan.audit, got) {
            (false, Ok(())) => failures.push(format!("{tag}: forbidden {} went through", p.what)),
            (true, Err(e)) => failures.push(format!("{tag}: audit mode blocked {e}")),
            // A failed lookup is not the firewall's refusal.
            (false, Err(e)) if e.starts_with(LOOKUP) => {
                failures.push(format!("{tag}: forbidden {e}"))
            }
            _ => {}
        }
        if after <= before {
            let kind = if plan.audit { "audited" } else { "dropped" };
            failures.push(format!("{tag}: forbidden {} not counted as {kind}", p.what));
        }
    }
    failures
}

/// A lab with every vendor device, and the vendor site prepared in it.
fn vendor_lab() -> (Lab, vendor_site::VendorSite) {
    let specs: Vec<DeviceSpec> = DEVICES
        .iter()
        .map(|(_, d)| vendor_site::dev(d.name, d.mac, d.host))
        .collect();
    let lab = Lab::build(&specs, &[]).unwrap();
    let site = vendor_site::prepare(&lab).unwrap();
    (lab, site)
}

#[test]
fn vendor_profiles_reach_their_endpoints_and_nothing_else() {
    let (mut lab, site) = vendor_lab();
    for p in &site.plans {
        eprintln!(
            "{} ({}): {} required, {} forbidden probes",
            p.profile,
            p.device,
            p.required.len(),
            p.forbidden.len()
        );
    }
    for s in &site.skipped {
        eprintln!("not probed: {s}");
    }
    lab.start_daemon(&site.config).unwrap();
    // Devices are independent (own counters, own learned entries): in
    // parallel, so the forbidden probes' timeouts overlap.
    let lab = &lab;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = site
            .plans
            .iter()
            .map(|plan| s.spawn(move || check(lab, plan)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("device checker panicked"))
            .collect()
    });
    let probed: usize = site
        .plans
        .iter()
        .map(|p| p.required.len() + p.forbidden.len())
        .sum();
    assert!(
        failures.is_empty(),
        "{} of {probed} probes failed:\n{}\n--- iotfence ---\n{}",
        failures.len(),
        failures.join("\n"),
        lab.daemon.as_ref().unwrap().log()
    );
}

/// Learn mode on the vendor library: each enforce-mode device, learned
/// with `iotfence learn` against the site's daemon while it reaches its
/// required endpoints, gets a draft that passes the check; the site with
/// the drafts in place of the vendor profiles (reloaded, enforce mode)
/// lets every required endpoint through and drops every forbidden probe.
#[test]
fn learned_drafts_of_vendor_devices_reach_their_endpoints_and_nothing_else() {
    let (mut lab, site) = vendor_lab();
    lab.start_daemon(&site.config).unwrap();
    let plans: Vec<&Plan> = site.plans.iter().filter(|p| !p.audit).collect();
    let learned = vendor_site::learn::learn(&lab, &site.config, &plans, 8).unwrap();
    for l in &learned {
        eprintln!("{}: {} rounds\n{}", l.device, l.rounds, l.stderr);
        assert!(
            l.success && l.stderr.contains("the draft passes iotfence check"),
            "{}: {}",
            l.device,
            l.stderr
        );
    }
    let text = vendor_site::learn::site_with_drafts(&lab, &learned);
    std::fs::write(lab.dir.join("policy.yaml"), text).unwrap();
    let daemon = lab.daemon.as_ref().unwrap();
    assert!(
        daemon.reload().unwrap(),
        "the site with the drafts: {}",
        daemon.log()
    );
    let lab = &lab;
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                s.spawn(move || {
                    let mut f = Vec::new();
                    for r in run(lab, plan.device, plan.required.clone()) {
                        if let Err(e) = r {
                            f.push(format!("{}: required {e}", plan.device));
                        }
                    }
                    for (p, r) in
                        plan.forbidden
                            .iter()
                            .zip(run(lab, plan.device, plan.forbidden.clone()))
                    {
                        if r.is_ok() {
                            f.push(format!(
                                "{}: forbidden {} went through",
                                plan.device, p.what
                            ));
                        }
                    }
                    f
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let drafts: Vec<String> = learned
        .iter()
        .map(|l| std::fs::read_to_string(&l.draft).unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{failures:#?}\n--- drafts ---\n{}",
        drafts.join("\n")
    );
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A line of an excerpt that stands for lines left out.
const ELISION: &str = "...";

/// The fenced YAML blocks of a Markdown text: (1-based line of the block's
/// first line, its lines).
fn yaml_blocks(md: &str) -> Vec<(usize, Vec<&str>)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Vec<&str>)> = None;
    for (i, line) in md.lines().enumerate() {
        let t = line.trim();
        match &mut open {
            None if t == "```yaml" || t == "```yml" => open = Some((i + 2, Vec::new())),
            None => {}
            Some(_) if t == "```" => blocks.push(open.take().unwrap()),
            Some((_, lines)) => lines.push(line),
        }
    }
    blocks
}

/// Checks every YAML block of the README that names a shipped file in its
/// first line (`# policies/<path>.yaml (excerpt)`, or without "(excerpt)"
/// for the whole file): its other lines are runs of that file's lines, in
/// the file's order, separated by lines that are only `...` (each standing
/// for at least one line left out). A block with top-level `profiles:` or
/// `requires:` must name its file. Returns how many blocks were checked
/// and every problem found.
fn excerpt_problems(readme: &str, read: &dyn Fn(&str) -> Option<String>) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (first, lines) in yaml_blocks(readme) {
        let header = lines.first().copied().unwrap_or("");
        let named = header
            .strip_prefix("# ")
            .map(|h| match h.strip_suffix(" (excerpt)") {
                Some(path) => (path, true),
                None => (h, false),
            })
            .filter(|(path, _)| {
                path.starts_with("policies/") && path.ends_with(".yaml") && !path.contains(' ')
            });
        let Some((path, excerpt)) = named else {
            if let Some(l) = lines
                .iter()
                .position(|l| l.starts_with("profiles:") || l.starts_with("requires:"))
            {
                problems.push(format!(
                    "README.md:{}: a policy block that names no shipped file; start it with `# policies/vendors/<file>.yaml (excerpt)`",
                    first + l
                ));
            }
            continue;
        };
        checked += 1;
        let Some(text) = read(path) else {
            problems.push(format!("README.md:{first}: {path} does not exist"));
            continue;
        };
        let file: Vec<&str> = text.lines().collect();
        let body: Vec<(usize, &str)> = lines[1..]
            .iter()
            .enumerate()
            .map(|(i, l)| (first + 1 + i, *l))
            .collect();
        if !excerpt {
            let got: Vec<&str> = body.iter().map(|(_, l)| *l).collect();
            if got != file {
                problems.push(format!(
                    "README.md:{first}: the block is not all of {path} (add \" (excerpt)\" to its first line if it is one)"
                ));
            }
            continue;
        }
        let chunks: Vec<&[(usize, &str)]> = body
            .split(|(_, l)| l.trim() == ELISION)
            .filter(|c| !c.is_empty())
            .collect();
        if chunks.is_empty() {
            problems.push(format!("README.md:{first}: the excerpt of {path} is empty"));
        }
        // File index after the previous run, and whether an elision
        // separates it from the next one.
        let mut cursor = 0;
        let mut elided = body.first().is_some_and(|(_, l)| l.trim() == ELISION);
        let mut rest = &body[..];
        for chunk in chunks {
            let at = rest.iter().position(|x| x.0 == chunk[0].0).unwrap();
            elided |= at > 0;
            rest = &rest[at + chunk.len()..];
            // The longest match of the run at or after `cursor`.
            let best = (cursor..file.len())
                .map(|i| {
                    let n = chunk
                        .iter()
                        .zip(&file[i..])
                        .take_while(|((_, a), b)| a == *b)
                        .count();
                    (n, i)
                })
                .max_by_key(|(n, i)| (*n, std::cmp::Reverse(*i)))
                .unwrap_or((0, cursor));
            match best {
                (n, i) if n == chunk.len() => {
                    if elided && i == cursor && cursor > 0 {
                        problems.push(format!(
                            "README.md:{}: `{ELISION}` before this line leaves nothing out of {path}",
                            chunk[0].0
                        ));
                    }
                    cursor = i + n;
                }
                (0, _) => problems.push(format!(
                    "README.md:{}: `{}` is not a line of {path} (after its line {cursor})",
                    chunk[0].0, chunk[0].1
                )),
                (n, i) => problems.push(format!(
                    "README.md:{}: `{}` differs from {path}:{}: `{}`",
                    chunk[n].0,
                    chunk[n].1,
                    i + n + 1,
                    file.get(i + n).unwrap_or(&"<end of file>")
                )),
            }
            elided = false;
        }
    }
    (checked, problems)
}

fn read_repo(path: &str) -> Option<String> {
    std::fs::read_to_string(repo().join(path)).ok()
}

/// The README shows policy excerpts as a shipped file's own lines, never
/// an edited or invented version of it.
#[test]
fn readme_policy_excerpts_are_shipped_lines() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (checked, problems) = excerpt_problems(&readme, &read_repo);
    assert!(
        problems.is_empty(),
        "README.md's policy excerpts are not the shipped files:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= 1,
        "README.md shows no policy excerpt naming a shipped file"
    );
}

/// The check itself notices an excerpt that was changed: any line edited
/// or dropped, any elision removed between runs that are apart in the file.
#[test]
fn readme_excerpt_check_notices_changes() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let with = |i: usize, line: Option<String>| {
        let mut v: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        match line {
            Some(l) => v[i] = l,
            None => {
                v.remove(i);
            }
        }
        v.join("\n") + "\n"
    };
    let mut tried = 0;
    for (first, block) in yaml_blocks(&readme) {
        if !block[0].starts_with("# policies/") {
            continue;
        }
        for (k, line) in block.iter().enumerate().skip(1) {
            let i = first - 1 + k;
            let is_elision = |l: &str| l.trim() == ELISION;
            // Inside a run (or between two): lines on both sides that are
            // not elisions. Dropping a run's first or last line leaves a
            // true excerpt, so only inner lines are dropped.
            let inner = k > 1 && k + 1 < block.len() && {
                !is_elision(block[k - 1]) && !is_elision(block[k + 1])
            };
            let mut variants = vec![];
            if !is_elision(line) {
                variants.push(("edited", with(i, Some(format!("{line} # edited")))));
                if inner {
                    variants.push(("dropped", with(i, None)));
                }
            } else if inner {
                variants.push(("elision removed", with(i, None)));
            }
            for (what, text) in variants {
                tried += 1;
                let (_, problems) = excerpt_problems(&text, &read_repo);
                assert!(
                    !problems.is_empty(),
                    "README.md:{}: line {what}, and the check did not notice",
                    i + 1
                );
            }
        }
    }
    assert!(tried > 0, "no excerpt to alter");
    // A block showing a profile without naming its file is refused too.
    let invented = "```yaml\nprofiles:\n  x: {}\n```\n";
    assert_eq!(excerpt_problems(invented, &read_repo).1.len(), 1);
}

/// `policies/site.example.yaml`, with every vendor file, compiled.
fn example_site() -> iotfence::policy::compile::Compiled {
    let policies = repo().join("policies");
    let cfg = iotfence::config::parse(
        &policies.join("iotfence.yaml"),
        "interfaces: [iot0]\npolicy: site.example.yaml\nresolvers: [192.0.2.1]\n",
    )
    .map_err(vendor_site::diagnostics)
    .unwrap();
    iotfence::policy::compile::load_path(&policies.join("site.example.yaml"), &cfg)
        .map_err(vendor_site::diagnostics)
        .unwrap()
}

/// What the documents' ICMP items need, which the lab (TCP and UDP probes
/// only) does not exercise: the MPS DCA sends ICMP of any type to every
/// destination its document names (item 5), and no further; KIS.ME devices
/// answer pings from any source (Tabelle 1), and start none.
#[test]
fn icmp_items_are_read_for_the_device() {
    use iotfence_common::consts::PROTO_ICMP;
    use std::net::IpAddr;
    let compiled = example_site();
    let profile = |name: &str| {
        compiled
            .profiles
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no profile {name}"))
    };
    let elsewhere: IpAddr = "198.51.100.77".parse().unwrap();
    let icmp = |rules: &[iotfence_common::PortRule], t: u16| {
        rules.iter().any(|r| vendor_site::allows(r, PROTO_ICMP, t))
    };

    let dca = profile("mps-monitor-dca4");
    let named: [(Option<&str>, &str); 5] = [
        (None, "192.0.2.130"), // in site.example.yaml's printer_networks
        (None, "213.92.56.75"),
        (None, "13.80.42.210"),
        (Some("dca4.mpsmonitor.com"), "198.51.100.77"),
        (
            Some("eu01-broker-mpsmonitor.azure-devices.net"),
            "198.51.100.77",
        ),
    ];
    for (name, addr) in named {
        let rules = vendor_site::allowed(dca, name, addr.parse().unwrap());
        for t in [8, 13, 0, 255] {
            assert!(icmp(&rules, t), "DCA: ICMP type {t} to {name:?} {addr}");
        }
    }
    assert!(
        !icmp(&vendor_site::allowed(dca, None, elsewhere), 8),
        "DCA: ICMP to an address the document does not name"
    );

    let kis = profile("rafi-kis-me-device");
    for src in ["198.51.100.77", "203.0.113.9", "192.0.2.2"] {
        let src: IpAddr = src.parse().unwrap();
        let rules: Vec<_> = kis
            .inbound
            .iter()
            .filter(|(net, _)| net.contains(&src))
            .flat_map(|(_, set)| vendor_site::rules_of(set).to_vec())
            .collect();
        assert!(icmp(&rules, 8), "KIS.ME: echo request from {src}");
    }
    assert!(
        !icmp(&vendor_site::allowed(kis, None, elsewhere), 8),
        "KIS.ME: the devices start no ICMP"
    );
}

/// `ENDPOINTS.md` lists, under "Limitations", exactly the `limitations:` of
/// every profile of the library, in the same words.
#[test]
fn endpoints_md_repeats_every_limitation() {
    let policies = repo().join("policies");
    let compiled = example_site();
    let want: BTreeMap<&str, Vec<&str>> = compiled
        .profiles
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != compiled.default_profile as usize)
        .map(|(_, p)| {
            (
                p.name.as_str(),
                p.limitations.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let md = std::fs::read_to_string(policies.join("vendors/ENDPOINTS.md")).unwrap();
    let (_, section) = md
        .split_once("\n## Limitations\n")
        .expect("ENDPOINTS.md has no Limitations section");
    let mut got: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut current = None;
    for line in section.lines() {
        if line.starts_with("## ") {
            break;
        }
        if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            current = Some(name);
            got.entry(name).or_default();
        } else if let Some(item) = line.strip_prefix("- ") {
            let name = current.expect("a limitation before any profile heading");
            got.get_mut(name).unwrap().push(item);
        }
    }
    let mut problems = Vec::new();
    for name in want
        .keys()
        .chain(got.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (w, g) = (want.get(name), got.get(name));
        for l in w
            .into_iter()
            .flatten()
            .filter(|l| !g.is_some_and(|g| g.contains(l)))
        {
            problems.push(format!("{name}: missing from ENDPOINTS.md: {l}"));
        }
        for l in g
            .into_iter()
            .flatten()
            .filter(|l| !w.is_some_and(|w| w.contains(l)))
        {
            problems.push(format!("{name}: in ENDPOINTS.md only: {l}"));
        }
        if problems.is_empty() && w != g {
            problems.push(format!(
                "{name}: ENDPOINTS.md lists the limitations in another order"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "policies/vendors/ENDPOINTS.md, section Limitations, vs the profiles' `limitations:`:\n{}",
        problems.join("\n")
    );
}
