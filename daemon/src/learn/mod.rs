//! Learn mode: observe a device in audit mode for a while and draft a
//! profile of what it did (`iotfence learn DEVICE --for 60s`).
//!
//! The daemon moves the device to a stand-in profile that audits
//! everything (`view`) for the session, aggregates every flow the kernel
//! reports for it and every DNS answer it gets (`observe`, `sessions`),
//! and applies its configured profile again when the time is up, whether
//! or not the client is still there. The client (`client`) starts and
//! ends the session over the metrics endpoint with the daemon's control
//! token (`token`), and renders the draft (`draft`, `collapse`) from the
//! report (`report`).

pub mod cli;
pub mod client;
pub mod collapse;
pub mod control;
pub mod draft;
pub mod observe;
pub mod report;
pub mod sessions;
pub mod token;
pub mod view;
