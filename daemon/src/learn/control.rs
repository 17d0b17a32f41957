//! What the HTTP endpoint asks of the serve loop, which alone applies
//! policies to the kernel: start or stop learning a device. The loop
//! answers with the session's report or why it refused.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{
    report::Report,
    sessions::{Refusal, Sessions},
};

pub type Reply = oneshot::Sender<Result<Report, Refusal>>;

pub enum Request {
    /// Learn `device` (its name in the policy) for `seconds`.
    Start {
        device: String,
        seconds: u64,
        reply: Reply,
    },
    /// End `device`'s session now (if it runs) and hand over its report.
    Stop { device: String, reply: Reply },
}

/// The endpoint's side: the sessions (read directly for progress), the
/// token a request must carry, and the way to the serve loop.
pub struct Control {
    pub sessions: Arc<Sessions>,
    pub token: String,
    pub requests: mpsc::Sender<Request>,
}
