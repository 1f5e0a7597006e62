//! What a [`crate::Peer`] gives back when polled: a datagram to send, the time it
//! wants to be woken, or something it received, digested from str0m's events so each
//! caller gets the track's kind and the payload's check without asking the `Rtc`.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::Transmit;

use crate::payload::Stamp;

/// One output of [`crate::Peer::poll`].
#[derive(Debug)]
pub enum PeerOutput {
    /// Nothing more until this time (or new input).
    Timeout(Instant),
    /// A datagram to send from `source` to `destination`.
    Transmit(Transmit),
    Event(PeerEvent),
}

/// Something the participant learnt.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE found a working pair (before DTLS).
    IceConnected,
    /// ICE and DTLS are up: media can flow.
    Connected,
    /// An m-line was added by a negotiation.
    MediaAdded {
        mid: Mid,
        kind: MediaKind,
        direction: Direction,
    },
    /// The other side asks for a keyframe on this (sending) track.
    KeyframeRequest { mid: Mid },
    /// An RTP packet (RTP mode).
    Packet(Packet),
    /// A whole frame (frame mode).
    Frame(Frame),
}

/// A received RTP packet with its stamp checked.
#[derive(Debug)]
pub struct Packet {
    pub ssrc: u32,
    /// Extended RTP sequence number.
    pub seq: u64,
    pub mid: Option<Mid>,
    pub kind: Option<MediaKind>,
    /// Shared with str0m's event, not copied.
    pub payload: Arc<[u8]>,
    /// `None` when the stamp is missing or a byte before it changed.
    pub stamp: Option<Stamp>,
    /// Its transport-wide sequence number (the header extension a sender that
    /// estimates the bandwidth adds for the receiver's feedback), if it has one.
    pub transport_seq: Option<u16>,
    pub time: Instant,
}

/// A received frame with its tag checked.
#[derive(Debug)]
pub struct Frame {
    pub mid: Mid,
    pub kind: MediaKind,
    pub data: Arc<[u8]>,
    /// The sender's tag and frame counter; `None` when any byte is off.
    pub tagged: Option<(String, u32)>,
}
