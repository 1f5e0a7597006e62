//! The packet plane: ICE, DTLS and SRTP termination with str0m, and RTP forwarding
//! between the participants of a room.
//!
//! - [`engine`]: starts the workers and the receive task; the handle signaling uses;
//!   [`status`]: its figures summed over the workers; [`ids`]: participant ids.
//! - [`receive`]: the task that reads the media sockets and routes each datagram to
//!   its worker; [`udp`]: the sockets (batched receive and send); [`tcp`]: ICE over
//!   TCP, one task per connection that reached the HTTPS port.
//! - [`worker`]: one thread around one [`shard::Shard`], the Sans-IO core that owns the
//!   peers of its rooms; [`registry`]: which worker serves which room and peer;
//!   [`link`]: what workers tell each other about a room spread over several.
//! - Inside a shard: [`driver`] (the one place an `Rtc` is changed and drained),
//!   [`peer`] (a participant by role, its up and down tracks), and the pure parts:
//!   [`demux`] (what a datagram is), [`rewrite`] (headers per receiver), [`simulcast`]
//!   (layer choice), [`keyframe`] (request throttling), [`codec`] (keyframe
//!   detection), [`stats`] (leg measurements).

pub mod codec;
pub mod demux;
pub(crate) mod driver;
pub mod engine;
pub(crate) mod ids;
pub(crate) mod keyframe;
pub(crate) mod lanes;
pub mod link;
pub(crate) mod peer;
pub(crate) mod receive;
pub(crate) mod registry;
pub mod rewrite;
pub mod shard;
pub(crate) mod simulcast;
pub mod speaker;
pub(crate) mod stats;
pub(crate) mod status;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod worker;
