//! The daemon's import structure, checked from its sources: top-level
//! modules form layers and import only from layers below their own, and no
//! files import each other in a cycle. A new module must be placed in
//! `LAYERS`, so where it sits is decided once, here.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// The top-level modules of `daemon/src/lib.rs`, lowest layer first. A
/// module imports from strictly lower rows only (so modules of one row do
/// not import each other).
const LAYERS: &[&[&str]] = &[
    // Helpers over the OS and text: no knowledge of iotfence's model.
    &[
        "caps", "clock", "diag", "exit", "host", "links", "lock", "notify", "private", "watch",
    ],
    // The configuration file.
    &["config"],
    // Policy documents to a compiled policy (reads the configuration's
    // site settings).
    &["policy"],
    // Learn mode's sessions, policy view and draft (fed by DNS learning and
    // the events above it, driven by the serve loop).
    &["learn"],
    // The one place that touches BPF objects.
    &["kernel"],
    // DNS learning (handed its kernel handles by `kernel::load`).
    &["dns"],
    // Violation events (names from DNS learning, devices from the policy).
    &["events"],
    // Metrics, health and status over all of the above.
    &["metrics"],
    // The daemon's main loop: wires everything together.
    &["explain", "mud", "prepare", "run"],
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `kernel/load.rs` → [kernel, load],
/// `kernel/mod.rs` → [kernel], `lib.rs` → [].
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

/// The file of the longest module prefix of `path` (the rest names items).
fn file_of(path: &[String]) -> PathBuf {
    let mut dir = src();
    let mut file = dir.join("lib.rs");
    for seg in path {
        let flat = dir.join(format!("{seg}.rs"));
        let nested = dir.join(seg).join("mod.rs");
        if flat.exists() {
            file = flat;
        } else if nested.exists() {
            file = nested;
        } else {
            break;
        }
        dir = dir.join(seg);
    }
    file
}

/// Source without comments and string literals, so prose that names a
/// path is not an import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident(b: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&b[start..i]).into_owned(), i)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Parses a path tree at `i` (`a::b::{c, d::e}` …) and adds every full
/// path, prefixed by `prefix`, to `out`; returns where it ended.
fn tree(b: &[u8], i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    let mut i = skip_ws(b, i);
    loop {
        if i < b.len() && b[i] == b'{' {
            i += 1;
            loop {
                i = skip_ws(b, i);
                if i < b.len() && b[i] == b'}' {
                    return i + 1;
                }
                i = tree(b, i, &path, out);
                i = skip_ws(b, i);
                if i < b.len() && b[i] == b',' {
                    i += 1;
                }
                if i >= b.len() {
                    return i;
                }
            }
        }
        let (seg, j) = ident(b, i);
        if seg.is_empty() {
            out.push(path);
            return i;
        }
        path.push(seg);
        i = j;
        if b[i..].starts_with(b"::") {
            i = skip_ws(b, i + 2);
        } else {
            out.push(path);
            return i;
        }
    }
}

/// The module paths (from the crate root) `file` refers to through
/// `crate::` and `super::` (relative child paths are its own submodules).
fn references(file: &Path) -> Vec<Vec<String>> {
    let text = code_only(&std::fs::read_to_string(file).unwrap());
    let b = text.as_bytes();
    let here = module_of(file);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if boundary && b[i..].starts_with(b"crate::") {
            i = tree(b, i + "crate::".len(), &[], &mut out);
        } else if boundary && b[i..].starts_with(b"super::") {
            // `super` of a file's module; repeated `super::` climb further.
            let mut base = here.clone();
            while b[i..].starts_with(b"super::") {
                base.pop();
                i = skip_ws(b, i + "super::".len());
            }
            i = tree(b, i, &base, &mut out);
        } else {
            i += 1;
        }
    }
    out
}

fn daemon_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.retain(|f| !f.ends_with("main.rs"));
    files
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

#[test]
fn every_module_is_placed_in_one_layer() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let placed: Vec<&str> = LAYERS.iter().flat_map(|r| r.iter().copied()).collect();
    let unique: BTreeSet<&str> = placed.iter().copied().collect();
    assert_eq!(placed.len(), unique.len(), "a module placed twice");
    assert_eq!(declared, unique, "lib.rs's modules and LAYERS differ");
}

#[test]
fn modules_import_only_from_lower_layers() {
    let mut wrong = Vec::new();
    for file in daemon_files() {
        let here = module_of(&file);
        let Some(top) = here.first() else { continue };
        let own = layer_of(top).unwrap_or_else(|| panic!("{top} is in no layer"));
        for path in references(&file) {
            let Some(to) = path.first() else { continue };
            if to == top {
                continue;
            }
            match layer_of(to) {
                Some(l) if l < own => {}
                _ => wrong.push(format!(
                    "{}: imports crate::{} (layer of {to} is not below {top}'s)",
                    file.strip_prefix(src()).unwrap().display(),
                    path.join("::")
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that run up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_cycle() {
    let files = daemon_files();
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        let edges = graph.entry(file.clone()).or_default();
        for path in references(file) {
            let to = file_of(&path);
            if to != *file {
                edges.insert(to);
            }
        }
    }
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        n: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        colour: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in graph.get(n).into_iter().flatten() {
            match colour.get(m).copied().unwrap_or(0) {
                0 => visit(m, graph, colour, stack, cycles),
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let names: Vec<String> = stack[at..]
                        .iter()
                        .chain([m])
                        .map(|p| p.strip_prefix(src()).unwrap().display().to_string())
                        .collect();
                    cycles.push(names.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(n.clone(), 2);
    }
    let mut colour = BTreeMap::new();
    let mut cycles = Vec::new();
    for n in graph.keys() {
        if colour.get(n).copied().unwrap_or(0) == 0 {
            visit(n, &graph, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checks_see_imports_of_every_form() {
    // The parser must see nested groups, inline paths and `super::`, or
    // the layer and cycle checks above could pass by seeing nothing.
    let load = references(&src().join("kernel/load.rs"));
    assert!(
        load.contains(&vec!["config".into(), "DnsSettings".into()]),
        "{load:?}"
    );
    assert!(
        load.contains(&vec!["kernel".into(), "maps".into(), "DnsMaps".into()]),
        "{load:?}"
    );
    let parse = references(&src().join("config/parse.rs"));
    assert!(
        parse.contains(&vec!["host".into(), "remote".into()]),
        "inline crate:: path: {parse:?}"
    );
    assert_eq!(
        file_of(&["kernel".into(), "load".into(), "Datapath".into()]),
        src().join("kernel/load.rs")
    );
    assert_eq!(
        file_of(&["metrics".into(), "Shared".into()]),
        src().join("metrics/mod.rs")
    );
}
