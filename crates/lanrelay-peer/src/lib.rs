//! A str0m test participant shared by lanrelay's integration tests, its in-memory
//! engine harness, its benchmarks and the load generator, so all of them negotiate,
//! send and check media the same way.
//!
//! Sans-IO like str0m itself: a [`Peer`] owns an `Rtc` (full ICE, like a browser),
//! builds offers and answers, takes datagrams and time as inputs and gives back
//! transmits, its next timeout and what it received ([`PeerEvent`]), each payload
//! already checked. Sockets, WebSockets and clocks belong to the callers: a tokio task
//! on a UDP socket (`lanrelay-load`), a WSS + UDP test participant (`tests/common`),
//! or memory wired to the engine (`tests/common/in_memory.rs`).
//!
//! - [`peer`]: the participant. [`event`]: what it reports. [`received`]: its tally
//!   per track (packets, frames, intact and corrupt payloads, keyframes).
//! - [`payload`]: stamped VP8/Opus RTP payloads (RTP mode, one payload per packet).
//! - [`frame`]: tagged whole frames (frame mode, str0m packetizes them).

pub mod event;
pub mod frame;
pub mod payload;
pub mod peer;
pub mod received;

pub use event::{Frame, Packet, PeerEvent, PeerOutput};
pub use peer::{Peer, PeerConfig, RtpOut, Track};
pub use received::{Received, TrackTally};

/// What can go wrong in a participant (all of it at the SDP or `Rtc` boundary).
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("local candidate {0}: {1}")]
    Candidate(std::net::SocketAddr, String),
    #[error("nothing to offer")]
    NothingToOffer,
    #[error("an answer without a pending offer")]
    NoPendingOffer,
    #[error("SDP: {0}")]
    Sdp(String),
    #[error("rtc: {0}")]
    Rtc(#[from] str0m::RtcError),
}
