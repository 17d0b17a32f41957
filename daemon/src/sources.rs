//! Reading a policy: one file, or a directory of `*.yaml` / `*.yml` files,
//! plus everything they `include:` (relative to the including file). Each
//! file is read once, whatever the include graph; a file that cannot be read
//! or parsed is reported where it was included.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use serde_saphyr::Location;

use crate::{
    diag::{from_yaml_error, Diagnostic, Diags},
    policy::PolicyDoc,
};

/// Includes nest at most this deep (a guard, not a limit anyone should meet).
const MAX_DEPTH: usize = 16;

/// One parsed policy file.
pub struct Source {
    pub path: PathBuf,
    pub doc: PolicyDoc,
}

/// Where an include was written, to locate problems with the included file.
type From<'a> = Option<(&'a Path, Location)>;

pub fn read(entry: &Path) -> Result<Vec<Source>, Vec<Diagnostic>> {
    let mut r = Reader::default();
    r.entry(entry, None, 0);
    if r.diags.iter().any(Diagnostic::is_error) {
        return Err(r.diags);
    }
    Ok(r.out)
}

/// Parses one file's text (tests, and `compile::compile`).
pub fn parse(path: &Path, text: &str) -> Result<Source, Vec<Diagnostic>> {
    let doc: PolicyDoc =
        serde_saphyr::from_str(text).map_err(|e| vec![from_yaml_error(path, &e)])?;
    Ok(Source {
        path: path.to_path_buf(),
        doc,
    })
}

#[derive(Default)]
struct Reader {
    out: Vec<Source>,
    seen: HashSet<PathBuf>,
    diags: Vec<Diagnostic>,
}

impl Reader {
    fn fail(&mut self, path: &Path, from: From<'_>, message: String, hint: Option<&str>) {
        match from {
            Some((file, loc)) => {
                let mut d = Diags::new(file);
                d.at(loc, message, hint);
                self.diags.extend(d.list);
            }
            None => self.diags.push(Diagnostic::file_error(
                path,
                message,
                hint.map(str::to_owned),
            )),
        }
    }

    fn entry(&mut self, path: &Path, from: From<'_>, depth: usize) {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                        !name.starts_with('.')
                            && (name.ends_with(".yaml") || name.ends_with(".yml"))
                            && p.is_file()
                    })
                    .collect(),
                Err(e) => {
                    self.fail(
                        path,
                        from,
                        format!("cannot read directory {}: {e}", path.display()),
                        None,
                    );
                    return;
                }
            };
            files.sort();
            if files.is_empty() {
                self.fail(
                    path,
                    from,
                    format!("{} holds no .yaml files", path.display()),
                    None,
                );
            }
            for f in files {
                self.file(&f, from, depth);
            }
        } else {
            self.file(path, from, depth);
        }
    }

    fn file(&mut self, path: &Path, from: From<'_>, depth: usize) {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if !self.seen.insert(key) {
            return;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                self.fail(
                    path,
                    from,
                    format!("cannot read policy {}: {e}", path.display()),
                    Some("paths are relative to the file that names them"),
                );
                return;
            }
        };
        let src = match parse(path, &text) {
            Ok(s) => s,
            Err(d) => {
                self.diags.extend(d);
                return;
            }
        };
        let includes: Vec<(String, Location)> = src
            .doc
            .include
            .iter()
            .map(|i| (i.value.clone(), i.referenced))
            .collect();
        self.out.push(src);
        let base = path.parent().unwrap_or(Path::new("."));
        for (inc, loc) in includes {
            if depth + 1 > MAX_DEPTH {
                self.fail(
                    path,
                    Some((path, loc)),
                    format!("includes nest deeper than {MAX_DEPTH}"),
                    None,
                );
                continue;
            }
            self.entry(&base.join(&inc), Some((path, loc)), depth + 1);
        }
    }
}
