//! Signaling messages from joined participants that are not negotiation: the path a
//! participant receives on, its camera and microphone state, the size it shows videos
//! at, its quality preference, direct-mode signals, chat messages (see [`super::chat`]),
//! the host's actions (see [`super::host`]), and leaving.
//! its screen share (see [`super::screen`]), and leaving.

use std::time::Instant;

use str0m::media::MediaKind;
use tracing::info;

use super::Shard;
use crate::sfu::peer::Peer;
use crate::signaling::protocol::{
    ClientMsg, ErrorCode, Path, PeerId, Role, ServerMsg, Source, MAX_REPORT_BYTES,
};

impl Shard {
    /// A signaling message from a joined participant.
    pub fn handle_signal(&mut self, now: Instant, id: PeerId, msg: ClientMsg) {
        if !self.peers.contains_key(&id) {
            return;
        }
        match msg {
            // The session takes `resume` before it would reach a joined participant.
            ClientMsg::Join { .. } | ClientMsg::Resume { .. } => {
                self.signal(id, ServerMsg::error(ErrorCode::BadState, "already joined"))
            }
            ClientMsg::Offer { sdp } => self.handle_offer(now, id, &sdp),
            ClientMsg::Answer { sdp } => self.handle_answer(now, id, &sdp),
            ClientMsg::Candidate { candidate, .. } => self.handle_candidate(id, &candidate),
            ClientMsg::Media { audio, video } => {
                let (audio, video) = self.media_allowed(now, id, audio, video);
                self.handle_media_state(id, audio, video)
            }
            ClientMsg::Direct { to, signal } => {
                let same_room =
                    self.peers.get(&to).map(|p| &p.room) == self.peers.get(&id).map(|p| &p.room);
                let allowed = self
                    .peers
                    .get_mut(&id)
                    .and_then(Peer::here_mut)
                    .is_none_or(|l| l.direct.take(now));
                if !allowed {
                    self.counters.direct_refused += 1;
                    let rate = self.cfg.direct_rate;
                    let message = format!(
                        "too many direct-call signals: at most {rate} a second; this one was dropped"
                    );
                    self.signal(id, ServerMsg::error(ErrorCode::RateLimited, message));
                } else if to == id || !same_room {
                    self.signal(
                        id,
                        ServerMsg::error(
                            ErrorCode::NoSuchPeer,
                            format!("no participant {to} in your room"),
                        ),
                    );
                } else {
                    self.signal(to, ServerMsg::Direct { from: id, signal });
                }
            }
            ClientMsg::Path { path, reason } => self.handle_path(id, path, reason),
            ClientMsg::Render { peer, width, .. } => {
                if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                    for ((src, _), d) in l.down.iter_mut() {
                        // The size of the participant's tile: its camera's, not its
                        // screen share's, which the page shows large.
                        if *src == peer && d.kind == MediaKind::Video && d.source != Source::Screen
                        {
                            d.render_width = (width > 0).then_some(width);
                        }
                    }
                }
                self.choose_layers(now, id, "the video's size on screen changed");
            }
            ClientMsg::Quality { quality } => {
                if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                    l.quality = quality;
                }
                self.choose_layers(now, id, "quality preference changed");
            }
            ClientMsg::Comparison { report } => self.handle_comparison(id, report),
            ClientMsg::Chat { text } => self.handle_chat(now, id, text),
            ClientMsg::Host { action, peer } => self.handle_host(now, id, action, peer),
            ClientMsg::Screen { mid } => self.handle_screen(now, id, mid),
            ClientMsg::Leave => self.leave(now, id, "left"),
        }
        self.process(now);
    }

    fn handle_path(&mut self, id: PeerId, path: Path, reason: String) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let reason: String = reason.chars().take(200).collect();
        info!(id, ?path, reason, "receives on");
        peer.info.path = Some(path);
        let room = peer.room.clone();
        for o in self.others(&room, id) {
            self.signal(
                o,
                ServerMsg::PeerPath {
                    id,
                    path,
                    reason: reason.clone(),
                },
            );
        }
    }

    /// A participant's comparison report: kept as its room's latest. Only a
    /// participant's (a viewer has no paths to compare) and only a JSON object of at
    /// most [`MAX_REPORT_BYTES`] (the WebSocket's own limit is larger).
    fn handle_comparison(&mut self, id: PeerId, report: serde_json::Value) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if peer.role != Role::Participant {
            let msg = "viewers do not run comparisons";
            self.signal(id, ServerMsg::error(ErrorCode::BadState, msg));
            return;
        }
        if !report.is_object() {
            let msg = "a comparison report is a JSON object";
            self.signal(id, ServerMsg::error(ErrorCode::BadMessage, msg));
            return;
        }
        let size = report.to_string().len();
        if size > MAX_REPORT_BYTES {
            let msg = format!(
                "the comparison report is {size} bytes; at most {MAX_REPORT_BYTES} are kept"
            );
            self.signal(id, ServerMsg::error(ErrorCode::TooLarge, msg));
            return;
        }
        let room = peer.room.clone();
        info!(id, room, size, "comparison report kept");
        self.rooms.set_comparison(&room, report);
    }

    /// A participant turned its camera or microphone on or off: everyone who sees it,
    /// participants and viewers (those served by other workers too), hears of it.
    fn handle_media_state(&mut self, id: PeerId, audio: bool, video: bool) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.info.audio = audio;
        peer.info.video = video;
        let room = peer.room.clone();
        for o in self.audience(&room, id) {
            self.signal(o, ServerMsg::PeerMedia { id, audio, video });
        }
    }
}
