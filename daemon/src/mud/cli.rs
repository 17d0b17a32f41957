//! `iotfence mud import` and `iotfence mud export`: files in, files (or
//! stdout) out, problems on stderr with the exit codes of `exit`.

use std::path::Path;

use super::{export, import, model, validate, yaml};
use crate::{
    config,
    diag::Diagnostic,
    exit,
    policy::{compile, sources},
};

fn print_diags(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    eprintln!("{errors} problem(s); nothing was written");
}

/// Writes `text` to `output`, or stdout.
fn write(output: Option<&Path>, text: &str) -> i32 {
    match output {
        None => {
            print!("{text}");
            0
        }
        Some(p) => match std::fs::write(p, text) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{}: cannot write: {e}", p.display());
                exit::OS
            }
        },
    }
}

pub struct ImportArgs<'a> {
    pub file: &'a Path,
    pub output: Option<&'a Path>,
    pub name: Option<&'a str>,
}

/// Reads and imports a MUD file; Err: the message for stderr.
pub fn import_file(file: &Path, name: Option<&str>) -> Result<super::profile::Profile, String> {
    let shown = file.display();
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("{shown}: error: cannot read: {e}"))?;
    let mud = model::parse(&text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m);
        format!("{shown}:{}:{}: error: {msg}", e.line(), e.column())
    })?;
    import::import(&mud, name).map_err(|e| format!("{shown}: error: {e}"))
}

/// The profile compiles, with placeholder addresses for the site
/// variables it requires: what `iotfence check` will say once the site
/// sets them.
pub fn self_check(path: &Path, text: &str, requires: &[&String]) -> Result<(), Vec<Diagnostic>> {
    let src = sources::parse(path, text)?;
    let mut vars = String::from(if requires.is_empty() {
        "vars: {}\n"
    } else {
        "vars:\n"
    });
    for (i, v) in requires.iter().enumerate() {
        vars.push_str(&format!(
            "  {}: [192.0.2.{}]\n",
            serde_json::to_string(v).unwrap_or_default(),
            100 + i % 100
        ));
    }
    let site = sources::parse(Path::new("<placeholder site>"), &vars)?;
    compile::compile_sources(&[src, site], &config::standalone(path)).map(|_| ())
}

pub fn import_cmd(a: ImportArgs<'_>) -> i32 {
    let p = match import_file(a.file, a.name) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return exit::DATA;
        }
    };
    let text = yaml::render(&p, &a.file.display().to_string());
    let vars: Vec<&String> = p.requires.keys().collect();
    if let Err(diags) = self_check(a.output.unwrap_or(Path::new("<output>")), &text, &vars) {
        eprintln!(
            "iotfence mud import: the profile made from {} does not compile (a bug):",
            a.file.display()
        );
        print_diags(&diags);
        return exit::DATA;
    }
    let code = write(a.output, &text);
    if code == 0 {
        eprintln!(
            "profile {}: {} egress and {} inbound rules, {} limitations{}",
            p.name,
            p.egress.len(),
            p.inbound.len(),
            p.limitations.len(),
            if vars.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = vars.iter().map(|v| v.as_str()).collect();
                format!("; the site policy sets {}", names.join(", "))
            }
        );
    }
    code
}

pub struct ExportArgs<'a> {
    pub profile: &'a str,
    pub policy: Option<&'a Path>,
    pub config: Option<&'a Path>,
    pub mud_url: Option<&'a str>,
    pub output: Option<&'a Path>,
    pub last_update: Option<&'a str>,
}

pub fn export_cmd(a: ExportArgs<'_>) -> i32 {
    let policy = match (a.policy, a.config) {
        (Some(p), _) => p.to_path_buf(),
        (None, c) => match config::load(c.unwrap_or(Path::new("/etc/iotfence/iotfence.yaml"))) {
            Ok(cfg) => cfg.policy,
            Err(diags) => {
                print_diags(&diags);
                return exit::DATA;
            }
        },
    };
    let srcs = match sources::read(&policy) {
        Ok(s) => s,
        Err(diags) => {
            print_diags(&diags);
            return exit::DATA;
        }
    };
    let last_update = a.last_update.map(str::to_string).unwrap_or_else(|| {
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
    });
    let opts = export::Options {
        mud_url: a.mud_url,
        last_update,
    };
    let out = match export::export(&srcs, a.profile, &opts) {
        Ok(o) => o,
        Err(diags) => {
            print_diags(&diags);
            return exit::DATA;
        }
    };
    let value = serde_json::to_value(&out.file).expect("a MUD file serializes");
    let problems = validate::check(&value);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("iotfence mud export: the file would not be valid: {p}");
        }
        return exit::DATA;
    }
    for l in &out.limitations {
        eprintln!("limitation: {l}");
    }
    // The typed file, not `value`: it keeps RFC 8520's member order.
    let mut text = serde_json::to_string_pretty(&out.file).expect("JSON serializes");
    text.push('\n');
    write(a.output, &text)
}
