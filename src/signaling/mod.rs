//! Signaling: the JSON protocol and the task that serves one WebSocket.

pub mod protocol;
pub(crate) mod session;
