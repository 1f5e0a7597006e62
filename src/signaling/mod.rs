//! Signaling: the JSON protocol (with its rules for names), the task that serves one
//! WebSocket, and the tokens that let a new WebSocket resume a participant whose
//! connection dropped.

pub mod names;
pub mod protocol;
pub(crate) mod resume;
pub(crate) mod session;
