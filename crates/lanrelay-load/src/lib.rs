//! The load generator behind the `lanrelay-load` binary: simulated participants with
//! real WebRTC stacks (str0m) that join a running SFU through its real signaling and
//! UDP, and a report of what one box carries.
//!
//! - [`config`]: flags. [`run`]: the sweep (join, wait, warm up, measure, leave).
//!   [`soak`]: rooms with churn for a long time, a line a minute, leak checks.
//! - [`peer`]: one participant (an `Rtc` on a UDP socket, one tokio task); [`pacer`]
//!   decides what a publisher sends when, [`probe`] checks every received packet
//!   (the payloads and their stamps are `lanrelay_peer::payload`), [`rxtime`] reads
//!   each datagram with its kernel arrival time.
//! - [`lanrelay`] and [`janus`]: the two servers' signaling; [`client`]: WSS and a
//!   small HTTP client; [`spawn`]: starting lanrelay; [`procfs`]: CPU and memory of
//!   a process; [`report`]: the table and the JSON.
#![allow(clippy::disallowed_methods)] // a load generator is I/O through and through: it reads the clock

pub mod client;
pub mod config;
pub mod janus;
pub mod lanrelay;
pub mod pacer;
pub mod peer;
pub mod probe;
pub mod procfs;
pub mod report;
pub mod run;
pub mod rxtime;
pub mod soak;
pub mod soak_report;
pub mod spawn;
pub mod tcp;

/// What can go wrong while generating load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("I/O: {0}")]
    Io(std::io::Error),
    #[error("cannot read {0}: {1}")]
    Proc(String, std::io::Error),
    #[error("unexpected format of {0}")]
    ProcFormat(String),
    #[error("starting the server: {0}")]
    Spawn(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("signaling: {0}")]
    Signaling(String),
    #[error("SDP: {0}")]
    Sdp(String),
    #[error("media: {0}")]
    Media(String),
    #[error("Janus: {0}")]
    Janus(String),
}
