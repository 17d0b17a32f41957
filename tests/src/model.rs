//! The userspace model of the datapath, which `iotfence explain` decides
//! with (`iotfence::explain::model`), as the tests use it.

pub use iotfence::explain::{model::*, Judgement};
