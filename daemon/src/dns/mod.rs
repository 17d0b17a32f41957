//! DNS learning: the kernel holds each answer a trusted resolver sends to a
//! device; the daemon checks it against the query that device sent, puts the
//! addresses its profile allows into the learned map, and only then releases
//! the identical frame. See README.md, "DNS learning".

pub mod frame;
pub mod inject;
pub mod learn;
pub mod names;
pub mod pending;
pub mod refused;
pub mod resent;
pub mod service;
pub mod state;
pub mod stats;
pub mod table;
