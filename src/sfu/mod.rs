//! The packet plane: ICE, DTLS and SRTP termination with str0m, and RTP forwarding
//! between the participants of a room.

pub mod codec;
pub mod core;
pub mod demux;
pub mod dispatch;
pub mod engine;
pub mod forward;
pub mod keyframe;
pub mod link;
pub mod peer;
pub mod registry;
pub mod simulcast;
pub mod stats;
pub mod udp;
pub mod worker;
