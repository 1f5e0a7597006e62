//! A room's text chat on its shards. The room's home posts each message to the room's
//! [`ChatLog`](crate::chat::ChatLog) (which checks it) and sends it to everyone in the
//! room, participants and viewers, those served by other workers through
//! [`Shard::signal`]. A viewer served by a mirror writes through the mirror, which
//! passes the message to the home; the home answers it as any other sender.
//!
//! Each joiner gets the room's last messages right after `joined` (`chatHistory`),
//! and again after a resume, since what was said while its connection was down was
//! not kept for it.

use std::time::Instant;

use tracing::debug;

use super::{Output, Shard};
use crate::chat::ChatRefusal;
use crate::sfu::link::LinkMsg;
use crate::sfu::peer::{Client, Served};
use crate::signaling::protocol::{PeerId, Role, ServerMsg};

impl Shard {
    /// Peer `id`, served here, sends a chat message.
    pub(super) fn handle_chat(&mut self, now: Instant, id: PeerId, text: String) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if let Some(&home) = self.mirrored.get(&peer.room) {
            // A viewer of a room homed elsewhere: its home keeps the chat.
            let msg = LinkMsg::Chat {
                room: peer.room.clone(),
                from: id,
                text,
            };
            self.out.push_back(Output::Link(home, msg));
            return;
        }
        self.post_chat(now, id, &text);
    }

    /// Home: viewer `from` of `room`, served by another worker, sends a chat message.
    pub(super) fn chat_from_elsewhere(
        &mut self,
        now: Instant,
        room: &str,
        from: PeerId,
        text: &str,
    ) {
        let known = self
            .peers
            .get(&from)
            .is_some_and(|p| matches!(p.served, Served::Elsewhere { .. }) && p.room == room);
        if known {
            self.post_chat(now, from, text);
        }
    }

    /// Home: posts `text` from `id` to its room's chat and sends it to everyone in the
    /// room, or tells `id` why not.
    fn post_chat(&mut self, now: Instant, id: PeerId, text: &str) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let (room, name, role) = (peer.room.clone(), peer.info.name.clone(), peer.role);
        let limits = self.cfg.chat;
        let Some(log) = self.rooms.chat_mut(&room) else {
            return;
        };
        match log.post(now, &limits, id, &name, role, text) {
            Ok(line) => {
                self.counters.chat_messages += 1;
                debug!(id, room, chars = line.text.chars().count(), "chat message");
                let everyone: Vec<PeerId> = self
                    .rooms
                    .members(&room)
                    .iter()
                    .chain(self.rooms.viewers(&room))
                    .copied()
                    .collect();
                for o in everyone {
                    if self.has_signaling(o) {
                        let message = line.clone();
                        self.signal(o, ServerMsg::Chat { message });
                    }
                }
            }
            Err(why) => {
                match why {
                    ChatRefusal::RateLimited { .. } => self.counters.chat_refused_rate += 1,
                    ChatRefusal::TooLong { .. } => self.counters.chat_refused_length += 1,
                    ChatRefusal::ViewerReadOnly => self.counters.chat_refused_viewer += 1,
                    ChatRefusal::Empty => {}
                }
                debug!(id, room, "chat message refused: {why}");
                let code = why.code();
                let message = why.to_string();
                self.signal(id, ServerMsg::ChatRefused { code, message });
            }
        }
    }

    /// Sends peer `id` its room's chat so far (asking the room's home when it is a
    /// viewer of a room homed elsewhere).
    pub(super) fn send_chat_history(&mut self, now: Instant, id: PeerId) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        if let Some(&home) = self.mirrored.get(&peer.room) {
            let msg = LinkMsg::ChatHistory {
                room: peer.room.clone(),
                id,
            };
            self.out.push_back(Output::Link(home, msg));
            return;
        }
        if !self.has_signaling(id) {
            return;
        }
        let can_write = peer.role == Role::Participant || self.cfg.chat.viewers_write;
        let messages = self
            .rooms
            .chat(&peer.room)
            .map(|log| log.history(now))
            .unwrap_or_default();
        let max_length = self.cfg.chat.max_len;
        self.signal(
            id,
            ServerMsg::ChatHistory {
                messages,
                can_write,
                max_length,
            },
        );
    }

    /// Home: a mirror asks for the chat history of its viewer `id` of `room`.
    pub(super) fn chat_history_elsewhere(&mut self, now: Instant, room: &str, id: PeerId) {
        let known = self
            .peers
            .get(&id)
            .is_some_and(|p| matches!(p.served, Served::Elsewhere { .. }) && p.room == room);
        if known {
            self.send_chat_history(now, id);
        }
    }

    /// Whether `id` has a signaling connection (a browser here or on another worker;
    /// not a WHIP/WHEP session, which has none, nor a stand-in).
    fn has_signaling(&self, id: PeerId) -> bool {
        match self.peers.get(&id).map(|p| &p.served) {
            Some(Served::Here(local)) => matches!(local.client, Client::Browser),
            Some(Served::Elsewhere { .. }) => true,
            _ => false,
        }
    }
}
