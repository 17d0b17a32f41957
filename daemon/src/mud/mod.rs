//! MUD (RFC 8520, Manufacturer Usage Description) files in and out of the
//! policy language: `iotfence mud import` turns a MUD file into a vendor
//! profile with what it cannot express stated in `limitations:`;
//! `iotfence mud export` writes a profile as a MUD file.
//!
//! model: the file's serde types; entry: one ACE read; import, yaml: the
//! profile and its text; export: the way back; vars: MUD's peer classes as
//! site variables; validate: the exported file's shape checked; cli: the
//! commands.

pub mod cli;
pub mod entry;
pub mod export;
pub mod import;
pub mod model;
pub mod notes;
pub mod profile;
pub mod validate;
pub mod vars;
pub mod yaml;
