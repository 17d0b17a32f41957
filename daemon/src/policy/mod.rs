//! The policy pipeline, files to maps' contents, with no kernel in sight:
//! the YAML document types (`doc`), reading a policy that spans files with
//! its includes (`sources`), domain patterns (`pattern`), validation and
//! compilation into what the maps hold (`compile`), and device ids that stay
//! stable across edits and restarts (`ids`).

pub mod compile;
pub mod doc;
pub mod ids;
pub mod pattern;
pub mod sources;
