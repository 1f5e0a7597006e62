//! The signaling wire protocol: every message a browser and the server exchange over
//! the WebSocket, as tagged JSON (`{"type": "join", ...}`).
//!
//! `web/signaling.js` mirrors these types and the README documents them message by
//! message. Direction vocabulary: *up* is browser to server, *down* is server to browser.

use serde::{Deserialize, Serialize};

pub use super::names::{check_display_name, check_name, valid_name, NameError, MAX_NAME_CHARS};

/// The id the server gives each participant; unique for the server's lifetime.
pub type PeerId = u64;

/// Largest WebSocket message the server accepts. SDP offers from browsers with many
/// m-lines stay well below this.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest comparison report kept (its JSON); a larger one is refused with `tooLarge`.
pub const MAX_REPORT_BYTES: usize = 48 * 1024;

/// What a participant does in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Sends and receives audio and video.
    #[default]
    Participant,
    /// Only watches: receives the participants' media, sends nothing, is not shown as
    /// a tile (participants see a viewer count).
    Viewer,
}

/// How media travels in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Media through the server (SFU).
    Relay,
    /// Media peer to peer between two browsers; the server only relays signaling.
    Direct,
    /// Start relayed, move to direct when it works, back to relay when it breaks.
    #[default]
    Auto,
}

/// Which path a participant currently receives media on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Path {
    Relay,
    Direct,
}

/// Signaling between two browsers for their direct (peer-to-peer) connection. The
/// server passes these along without looking inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum DirectSignal {
    /// SDP offer of the direct connection.
    Offer { sdp: String },
    /// SDP answer of the direct connection.
    Answer { sdp: String },
    /// A trickled ICE candidate of the direct connection.
    Candidate {
        candidate: String,
        #[serde(default, rename = "sdpMid")]
        sdp_mid: Option<String>,
        #[serde(default, rename = "sdpMLineIndex")]
        sdp_m_line_index: Option<u16>,
    },
    /// The sender now receives on `path`: send your media there.
    Using { path: Path },
    /// Receive on `path` (or choose yourself again, when absent), e.g. for a comparison run.
    Force {
        #[serde(default)]
        path: Option<Path>,
    },
    /// The direct connection is closed, with why.
    Bye { reason: String },
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
        /// The call mode the participant asks for; the room keeps the mode of whoever
        /// opened it (see `joined.mode`).
        #[serde(default)]
        mode: Mode,
        /// The room's token, for rooms that need one (`--room-token`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// The room's token or the server's operator token: the participant becomes
        /// the room's host on joining, and gets into a locked room.
        #[serde(default, rename = "hostToken", skip_serializing_if = "Option::is_none")]
        host_token: Option<String>,
    },
    /// Take over the participant that `token` names (from its `joined` message) on this
    /// new connection, instead of joining: after a dropped WebSocket, within the
    /// server's grace period. Must be the first message. The server answers with a
    /// fresh `joined` (same id, the room as it is now), or `resumeRefused`.
    Resume { token: String },
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
    /// Pass a direct-connection message to another participant of the room.
    Direct { to: PeerId, signal: DirectSignal },
    /// The participant now receives on `path`, and why (shown in stats and to others).
    Path { path: Path, reason: String },
    /// The size (device pixels) at which the video of participant `peer` is shown, so
    /// the server sends no larger simulcast layer than useful.
    Render {
        peer: PeerId,
        width: u32,
        height: u32,
    },
    /// The receiver's quality preference for simulcast video.
    Quality { quality: Quality },
    /// The report of a comparison run this participant made (relayed vs direct): the
    /// server keeps the room's latest, until the room closes, for
    /// `GET /api/rooms/ROOM/comparison`. At most [`MAX_REPORT_BYTES`] of JSON.
    Comparison { report: serde_json::Value },
    /// A chat message to everyone in the room (participants and viewers). Trimmed;
    /// refused (`chatRefused`) when empty, longer than the server's `--chat-max-len`
    /// characters, over its `--chat-rate`, or from a viewer where viewers only read.
    Chat { text: String },
    /// The room's host keeps order: mute a participant's microphone, allow it to
    /// unmute, stop its camera, remove it, hand the role over (`peer` names whom), or
    /// lock and unlock the room (no `peer`). Refused with `notHost` from anyone else.
    Host {
        action: HostAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<PeerId>,
    },
    /// The m-line (`mid` of the page's transceiver) that carries this participant's
    /// screen share, sent with or just before the offer that adds it; `null` when the
    /// share stops. The server tags that track as a screen (`source` in the offers'
    /// `tracks`), tells the room (`peerScreen`), or refuses it (`screenRefused`) when
    /// the room already has as many shares as it allows; a refused track is not
    /// forwarded.
    Screen { mid: Option<String> },
    /// Leave the room and close the connection.
    Leave,
}

/// What a room's host does (`host.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HostAction {
    /// Stop forwarding `peer`'s microphone; it may not unmute until `allowUnmute`.
    Mute,
    /// `peer` may turn its microphone on again (the host never turns it on).
    AllowUnmute,
    /// Stop forwarding `peer`'s camera; forwarding resumes when `peer` turns it on.
    StopVideo,
    /// `peer` leaves the room (`error` `removed`), its resume token dead.
    Remove,
    /// `peer` becomes the host.
    MakeHost,
    /// New participants and viewers are refused (`roomLocked`).
    Lock,
    Unlock,
    /// Stop `peer`'s screen share (it hears `screenRefused` `screenStopped`; it may
    /// share again later).
    StopScreen,
    /// Several participants may share a screen at once.
    AllowShares,
    /// One share at a time again (shares already on go on until they end).
    OneShare,
    /// Start recording the room (everyone hears `recording`); refused in a direct
    /// room (`notRecordable`) or where the server records nothing (`recordingOff`).
    Record,
    /// Stop recording the room: its files are finished.
    StopRecording,
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub id: PeerId,
    pub name: String,
    pub audio: bool,
    pub video: bool,
    /// The path this participant receives on, once known.
    pub path: Option<Path>,
    /// It shares a screen (see `ClientMsg::Screen`).
    #[serde(default)]
    pub screen: bool,
}

impl PeerInfo {
    /// A participant as it joins: microphone and camera on, its path not known yet.
    pub fn joining(id: PeerId, name: String) -> Self {
        PeerInfo {
            id,
            name,
            audio: true,
            video: true,
            path: None,
            screen: false,
        }
    }
}

/// What the server measures on one participant's relayed connection (its two legs:
/// *up* from the browser to the server, *down* from the server to the browser).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegStats {
    /// Round-trip time between server and browser, milliseconds: from the browser's
    /// RTCP receiver reports of the last second on what the server sends it (`None`
    /// in a second without one).
    pub rtt_ms: Option<f64>,
    /// Media bitrate received from the browser, bits per second.
    pub up_bps: f64,
    /// Media bitrate sent to the browser, bits per second.
    pub down_bps: f64,
    /// Share of packets from the browser that were lost (0..1), as the server saw it.
    pub up_loss: Option<f64>,
    /// Share of packets to the browser that were lost (0..1), as the browser reported.
    pub down_loss: Option<f64>,
    /// Interarrival jitter at the server, milliseconds, of the browser's video layer
    /// the other participants receive (simulcast: the forwarded layer).
    pub up_jitter_ms: Option<f64>,
    /// Interarrival jitter at the server of the browser's audio, milliseconds.
    #[serde(default)]
    pub up_audio_jitter_ms: Option<f64>,
    /// Interarrival jitter of the server's video and audio as the browser reports it
    /// (RTCP receiver reports), milliseconds.
    #[serde(default)]
    pub down_jitter_ms: Option<f64>,
    #[serde(default)]
    pub down_audio_jitter_ms: Option<f64>,
    /// Retransmission requests the server sent (up) and received (down).
    pub up_nacks: u64,
    pub down_nacks: u64,
    /// Keyframe requests received from the browser.
    pub down_plis: u64,
    /// Each stream the browser sends (per simulcast layer) and each the server sends.
    #[serde(default)]
    pub up_streams: Vec<StreamStats>,
    #[serde(default)]
    pub down_streams: Vec<StreamStats>,
    /// The selected candidate pair: the server's address, the browser's address.
    pub local: Option<String>,
    pub remote: Option<String>,
    pub protocol: Option<String>,
}

/// One RTP stream of a relayed leg (one simulcast layer, or one audio or video track).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStats {
    pub mid: String,
    /// The simulcast layer, if any.
    pub rid: Option<String>,
    /// `audio` or `video`.
    pub kind: String,
    /// Interarrival jitter, milliseconds (converted from the stream's RTP clock).
    pub jitter_ms: Option<f64>,
    /// Packets in the last second.
    pub packets: u64,
    /// Share of packets lost (0..1) in the last receiver report.
    pub loss: Option<f64>,
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
        /// The room's call mode.
        mode: Mode,
        /// The token a new connection gives in `resume` to take this participant over
        /// should this one drop; absent when the server does not keep participants.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
        /// In a cluster: the other live nodes (`https://HOST:PORT`), where the page
        /// goes should this node stop answering; absent outside a cluster.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        nodes: Vec<String>,
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
    /// Participant `id` started (`screen` true) or stopped sharing a screen; sent to
    /// everyone in the room, viewers too. Its track arrives (or ends) in the server's
    /// next offer, where `tracks` says `source: screen`.
    PeerScreen { id: PeerId, screen: bool },
    /// This participant's screen share is not forwarded: the room already has as many
    /// shares as it allows (`screenBusy`), or the server stopped it (`screenStopped`).
    /// The page stops sharing and shows `message`.
    ScreenRefused { code: ErrorCode, message: String },
    /// Participant `id` is the room's active speaker (`null`: nobody speaks), sent to
    /// everyone in the room, viewers too, when it changes, and after `joined`.
    Speaker { id: Option<PeerId> },
    /// Who the room's host is (`null`: nobody, until a participant joins) and whether
    /// the room is locked: after `joined` (and after a resume), and whenever either
    /// changes, to participants and viewers.
    Room {
        host: Option<PeerId>,
        locked: bool,
        /// Several participants may share a screen at once (the host allowed it);
        /// otherwise one.
        many_shares: bool,
    },
    /// What the host stopped this participant from sending (`audio`: the microphone,
    /// `video`: the camera; true while held) and which host decided. After `joined`
    /// of a resume too, while anything is held.
    Held {
        audio: bool,
        video: bool,
        by: PeerId,
    },
    /// The room is being recorded (`on`), or no longer; sent to everyone in the room,
    /// viewers too, when it changes, and after `joined` while it is on. `message`
    /// says why a recording stopped by itself (the disk is full, the recorder could
    /// not keep up).
    Recording {
        on: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Sent to the room's host only (when it becomes the host, and after a resume):
    /// the key that opens this room's recordings at `/recordings` (the page keeps it
    /// in a cookie named `lanrelay-rec-` and its first 8 characters). A new host gets
    /// a new key; the old one opens nothing any more.
    RecordingAccess { key: String },
    /// This browser cannot decode participant `id`'s video codec (`decodable` false,
    /// `message` says why and what happens next), or decodes it again (true).
    PeerCodec {
        id: PeerId,
        codec: String,
        decodable: bool,
        /// The publisher was asked to send VP8 (false: it cannot change codec).
        #[serde(default)]
        switchable: bool,
        message: String,
    },
    /// Send your video in `codec` (the page renegotiates): someone in the room cannot
    /// decode what you send.
    SendCodec { codec: String, reason: String },
    /// A participant now receives on another path.
    PeerPath {
        id: PeerId,
        path: Path,
        reason: String,
    },
    /// A direct-connection message from another participant.
    Direct { from: PeerId, signal: DirectSignal },
    /// Once a second: the server's measurements of this participant's relayed legs.
    Stats { stats: LegStats },
    /// The simulcast layer of participant `peer`'s video now forwarded to you
    /// (`index` 0 is the smallest of `count` layers), and why.
    Layer {
        peer: PeerId,
        rid: String,
        index: usize,
        count: usize,
        reason: String,
    },
    /// How many viewers watch the room (sent to participants when it changes).
    Viewers { count: usize },
    /// The server's answer to the browser's offer.
    Answer { sdp: String },
    /// A server-initiated renegotiation (tracks of others added or removed). `tracks`
    /// says whose track each sending m-line of the offer carries: the server reuses
    /// the m-lines of tracks that ended, so an m-line's stream id (`MediaStream.id`,
    /// the participant it was first opened for) can name someone who left.
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tracks: Vec<MidOwner>,
    },
    /// Something the browser asked for failed. `code` is stable; `message` is for people.
    Error { code: ErrorCode, message: String },
    /// Instead of `joined`, in a cluster of nodes: another node serves this room (a
    /// participant goes to the room's origin; a viewer may be sent to a less loaded
    /// node). `url` is that node's `https://HOST:PORT`; the page opens the same path
    /// and query there and joins again. The connection then closes.
    Redirect { url: String },
    /// A chat message of the room, the sender's own included (its echo says it was
    /// sent).
    Chat { message: ChatLine },
    /// The room's last chat messages, oldest first, and what this page may send: right
    /// after `joined` (and again after a resume, replacing what the page shows).
    #[serde(rename_all = "camelCase")]
    ChatHistory {
        messages: Vec<ChatLine>,
        /// Whether this participant may write (viewers only where the server allows).
        can_write: bool,
        /// Longest message, in characters.
        max_length: usize,
    },
    /// This participant's chat message was not sent, and why. Not an `error`: it
    /// ends nothing and belongs in the chat panel (an `error` with `forbidden` means
    /// the page cannot stay).
    ChatRefused { code: ErrorCode, message: String },
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatLine {
    /// Rises by one per message in the room.
    pub id: u64,
    /// Who wrote it (it may have left since), its name then and its role.
    pub from: PeerId,
    pub name: String,
    pub role: Role,
    /// Plain text, never markup: pages show it as text.
    pub text: String,
    /// How long ago it was written, milliseconds (0 as it happens; the server's
    /// clock is not sent, so pages and server need not agree on the time).
    pub ago_ms: u64,
}

/// Whose track an m-line of a server offer carries, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MidOwner {
    pub mid: String,
    pub peer: PeerId,
    /// A camera, a microphone or a shared screen: the page shows a share large, and
    /// an m-line that carried a camera may carry a screen next.
    #[serde(default)]
    pub source: Source,
}

/// What an up track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    #[default]
    Camera,
    Microphone,
    /// A shared screen (the page said so with `screen`).
    Screen,
}

/// Stable error codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// The message was not valid JSON or not a known message.
    BadMessage,
    /// The message was larger than [`MAX_MESSAGE_BYTES`] (or a chat message longer
    /// than the server's limit).
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
    /// A direct message named someone who is not in the room.
    NoSuchPeer,
    /// The room needs a token and none or a wrong one was given; or (in
    /// `chatRefused`) a viewer wrote where viewers only read.
    Forbidden,
    /// The server is shutting down or overloaded.
    Unavailable,
    /// Too many messages of a kind too fast (direct signals, chat messages): this one
    /// was dropped (the limit is in the sentence).
    RateLimited,
    /// (In `screenRefused`) the room already has as many screen shares as it allows.
    ScreenBusy,
    /// (In `screenRefused`) the server stopped this participant's screen share (a
    /// host's action).
    ScreenStopped,
    /// A `resume` named no participant that waits to be resumed (it left, its grace
    /// period is over, or the token is wrong); the connection closes: join again.
    ResumeRefused,
    /// A `host` action from a participant that is not the room's host: nothing changed.
    NotHost,
    /// The room's host removed this participant; the connection closes.
    Removed,
    /// The room's host locked the room to new participants and viewers; the
    /// connection closes.
    RoomLocked,
    /// The host muted this microphone or stopped this camera: turning it on is
    /// refused until the host allows it (`held`).
    HeldByHost,
    /// The host asked to record a direct call: its media does not pass through the
    /// server, which has nothing to record.
    NotRecordable,
    /// The host asked to record, and this server records nothing.
    RecordingOff,
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

/// A receiver's choice of quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Quality {
    /// As good as the link and the rendered size allow.
    #[default]
    Auto,
    /// The best layer, whatever the link.
    High,
    /// The smallest layer.
    Low,
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
                role: Role::Participant,
                mode: Mode::Auto,
                token: None,
                host_token: None,
            }
        );
    }

    #[test]
    fn a_comparison_report_is_any_json_object() {
        let text = r#"{"type":"comparison","report":{"verdict":{"better":"direct","text":"Direct: 11 ms lower round trip."},"paths":{"relay":{"summary":{"rttMs":21.5,"lossPct":null,"samples":7}}},"order":["relay","direct"]}}"#;
        let m: ClientMsg = serde_json::from_str(text).unwrap();
        let ClientMsg::Comparison { report } = m else {
            panic!("not a comparison: {m:?}");
        };
        assert_eq!(report["verdict"]["better"], "direct");
        assert_eq!(report["paths"]["relay"]["summary"]["rttMs"], 21.5);
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
    fn chat_messages_are_camel_case() {
        let line = ChatLine {
            id: 4,
            from: 7,
            name: "Bo".into(),
            role: Role::Viewer,
            text: "<b>hi</b>".into(),
            ago_ms: 1500,
        };
        let h = serde_json::to_string(&ServerMsg::ChatHistory {
            messages: vec![line],
            can_write: false,
            max_length: 1000,
        })
        .unwrap();
        assert_eq!(
            h,
            r#"{"type":"chatHistory","messages":[{"id":4,"from":7,"name":"Bo","role":"viewer","text":"<b>hi</b>","agoMs":1500}],"canWrite":false,"maxLength":1000}"#
        );
        let up: ClientMsg = serde_json::from_str(r#"{"type":"chat","text":"hi"}"#).unwrap();
        assert_eq!(up, ClientMsg::Chat { text: "hi".into() });
    }

    #[test]
    fn screen_messages_are_camel_case() {
        let up: ClientMsg = serde_json::from_str(r#"{"type":"screen","mid":"3"}"#).unwrap();
        assert_eq!(
            up,
            ClientMsg::Screen {
                mid: Some("3".into())
            }
        );
        let stop: ClientMsg = serde_json::from_str(r#"{"type":"screen","mid":null}"#).unwrap();
        assert_eq!(stop, ClientMsg::Screen { mid: None });
        let offer = ServerMsg::Offer {
            sdp: "v=0".into(),
            tracks: vec![MidOwner {
                mid: "4".into(),
                peer: 7,
                source: Source::Screen,
            }],
        };
        assert_eq!(
            serde_json::to_string(&offer).unwrap(),
            r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"4","peer":7,"source":"screen"}]}"#
        );
        let refused = ServerMsg::ScreenRefused {
            code: ErrorCode::ScreenBusy,
            message: "Ann is already sharing a screen".into(),
        };
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            r#"{"type":"screenRefused","code":"screenBusy","message":"Ann is already sharing a screen"}"#
        );
        let on = ServerMsg::PeerScreen {
            id: 7,
            screen: true,
        };
        assert_eq!(
            serde_json::to_string(&on).unwrap(),
            r#"{"type":"peerScreen","id":7,"screen":true}"#
        );
    }

    #[test]
    fn direct_signals_round_trip() {
        let m: ClientMsg = serde_json::from_str(
            r#"{"type":"direct","to":2,"signal":{"kind":"candidate","candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        let ClientMsg::Direct { to: 2, signal } = m else {
            panic!("{m:?}")
        };
        let back = serde_json::to_string(&ServerMsg::Direct { from: 1, signal }).unwrap();
        assert_eq!(
            back,
            r#"{"type":"direct","from":1,"signal":{"kind":"candidate","candidate":"c","sdpMid":"0","sdpMLineIndex":0}}"#
        );
        let j: ClientMsg =
            serde_json::from_str(r#"{"type":"join","room":"r","name":"n","mode":"direct"}"#)
                .unwrap();
        assert!(matches!(
            j,
            ClientMsg::Join {
                mode: Mode::Direct,
                ..
            }
        ));
        assert!(serde_json::from_str::<ClientMsg>(
            r#"{"type":"join","room":"r","name":"n","mode":"p2p"}"#
        )
        .is_err());
    }
}
