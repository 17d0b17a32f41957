//! Problems found in a configuration or policy, each with file:line:column,
//! a plain message and a hint. Errors reject the input; warnings (lints) are
//! printed and do not.

use std::{fmt, path::Path};

use serde_saphyr::{Location, Spanned};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error about a whole file (no better location).
    pub fn file_error(file: &Path, message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.display().to_string(),
            line: 1,
            column: 1,
            message: message.into(),
            hint,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file.
pub struct Diags<'a> {
    file: &'a Path,
    pub list: Vec<Diagnostic>,
}

impl<'a> Diags<'a> {
    pub fn new(file: &'a Path) -> Self {
        Self {
            file,
            list: Vec::new(),
        }
    }

    /// The file these diagnostics are about.
    pub fn path(&self) -> &Path {
        self.file
    }

    fn push(&mut self, severity: Severity, loc: Location, message: String, hint: Option<&str>) {
        self.list.push(Diagnostic {
            severity,
            file: self.file.display().to_string(),
            line: loc.line(),
            column: loc.column(),
            message,
            hint: hint.map(str::to_owned),
        });
    }

    pub fn at(&mut self, loc: Location, message: impl Into<String>, hint: Option<&str>) {
        self.push(Severity::Error, loc, message.into(), hint);
    }

    pub fn on<T>(&mut self, s: &Spanned<T>, message: impl Into<String>, hint: Option<&str>) {
        self.at(s.referenced, message, hint);
    }

    pub fn warn_at(&mut self, loc: Location, message: impl Into<String>, hint: Option<&str>) {
        self.push(Severity::Warning, loc, message.into(), hint);
    }

    /// A whole-file problem (no better location), e.g. a missing key.
    pub fn file(&mut self, message: impl Into<String>, hint: Option<&str>) {
        self.list.push(Diagnostic::file_error(
            self.file,
            message,
            hint.map(str::to_owned),
        ));
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }
}

/// A YAML syntax or shape error from the parser, located.
pub fn from_yaml_error(file: &Path, err: &serde_saphyr::Error) -> Diagnostic {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let rendered = err.without_snippet().to_string();
    // The parser prefixes its own "line N column M"; keep only the message.
    let message = rendered
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .to_string();
    Diagnostic {
        severity: Severity::Error,
        file: file.display().to_string(),
        line,
        column,
        message,
        hint: Some("see the policy and configuration reference in README.md".into()),
    }
}
