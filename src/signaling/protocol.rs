//! The signaling wire protocol: every message a browser and the server exchange over
//! the WebSocket, as tagged JSON (`{"type": "join", ...}`).
//!
//! `web/signaling.js` mirrors these types and the README documents them message by
//! message. Direction vocabulary: *up* is browser to server, *down* is server to browser.

use serde::{Deserialize, Serialize};

/// The id the server gives each participant; unique for the server's lifetime.
pub type PeerId = u64;

/// Largest WebSocket message the server accepts. SDP offers from browsers with many
/// m-lines stay well below this.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest room or participant name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// What a participant does in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Sends and receives audio and video.
    #[default]
    Participant,
}

/// A message from the browser to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientMsg {
    /// Enter a room. Must be the first message; exactly once per connection.
    Join {
        room: String,
        name: String,
        #[serde(default)]
        role: Role,
    },
    /// An SDP offer from the browser (its first offer, or a renegotiation).
    Offer { sdp: String },
    /// The browser's SDP answer to the server's latest `offer`.
    Answer { sdp: String },
    /// A trickled ICE candidate (`RTCIceCandidate.candidate`); empty means end of candidates.
    Candidate {
        candidate: String,
        #[serde(default, rename = "sdpMid")]
        sdp_mid: Option<String>,
    },
    /// The participant's own microphone/camera state, shown to the others.
    Media { audio: bool, video: bool },
    /// Leave the room and close the connection.
    Leave,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub id: PeerId,
    pub name: String,
    pub audio: bool,
    pub video: bool,
}

/// A message from the server to the browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMsg {
    /// The join succeeded. `peers` are the others already in the room.
    Joined {
        id: PeerId,
        room: String,
        peers: Vec<PeerInfo>,
        /// Largest number of participants this room takes.
        capacity: usize,
    },
    /// Someone entered the room.
    PeerJoined { peer: PeerInfo },
    /// Someone left the room (`reason`: `left`, `disconnected`, `timeout`, `error`).
    PeerLeft { id: PeerId, reason: String },
    /// A participant's microphone/camera state changed.
    PeerMedia {
        id: PeerId,
        audio: bool,
        video: bool,
    },
    /// The server's answer to the browser's offer.
    Answer { sdp: String },
    /// A server-initiated renegotiation (tracks of others added or removed). Each
    /// received track's stream id (`MediaStream.id`) is the sending participant's id.
    Offer { sdp: String },
    /// Something the browser asked for failed. `code` is stable; `message` is for people.
    Error { code: ErrorCode, message: String },
}

/// Stable error codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// The message was not valid JSON or not a known message.
    BadMessage,
    /// The message was larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    /// A message arrived that makes no sense in the current state (e.g. offer before join).
    BadState,
    /// Room or participant name is empty or too long.
    BadName,
    /// The room has reached its capacity.
    RoomFull,
    /// The SDP could not be parsed or negotiated.
    BadSdp,
    /// The media connection timed out or failed.
    MediaFailed,
    /// The server is shutting down or overloaded.
    Unavailable,
}

impl ServerMsg {
    /// An error message with its code.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
        }
    }
}

/// Checks a room or participant name: non-empty after trimming, at most
/// [`MAX_NAME_CHARS`] characters, no control characters.
pub fn valid_name(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && t.chars().count() <= MAX_NAME_CHARS && !t.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parses_with_default_role() {
        let m: ClientMsg =
            serde_json::from_str(r#"{"type":"join","room":"r","name":"n"}"#).unwrap();
        assert_eq!(
            m,
            ClientMsg::Join {
                room: "r".into(),
                name: "n".into(),
                role: Role::Participant
            }
        );
    }

    #[test]
    fn unknown_type_and_fields_are_rejected() {
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"nope"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientMsg>(r#"{"type":"offer","sdp":"x","bogus":1}"#).is_err()
        );
        assert!(serde_json::from_str::<ClientMsg>("not json").is_err());
    }

    #[test]
    fn server_messages_are_camel_case() {
        let s = serde_json::to_string(&ServerMsg::PeerLeft {
            id: 3,
            reason: "left".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"type":"peerLeft","id":3,"reason":"left"}"#);
        let e = serde_json::to_string(&ServerMsg::error(ErrorCode::RoomFull, "full")).unwrap();
        assert_eq!(e, r#"{"type":"error","code":"roomFull","message":"full"}"#);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("kitchen"));
        assert!(!valid_name("   "));
        assert!(!valid_name("a\u{7}b"));
        assert!(!valid_name(&"x".repeat(MAX_NAME_CHARS + 1)));
    }
}
