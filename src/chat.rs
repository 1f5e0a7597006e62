//! A room's text chat, Sans-IO: what a message may be, how many one sender may post,
//! and the last messages a late joiner is given. The media shard that is a room's
//! home keeps one [`ChatLog`] per room (in [`crate::room::Rooms`]) and fans the
//! accepted messages out over the signaling connections; this module decides.
//!
//! Nothing a client sends grows it without a bound: the history keeps the last
//! [`ChatLimits::history`] messages of at most [`ChatLimits::max_len`] characters
//! each, and the rate window keeps at most [`ChatLimits::rate`] instants per sender,
//! forgotten when the sender leaves.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::signaling::protocol::{ChatLine, ErrorCode, PeerId, Role};

/// The window [`ChatLimits::rate`] counts messages over.
pub const CHAT_WINDOW: Duration = Duration::from_secs(10);

/// The chat's limits and its one room setting (`--chat-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLimits {
    /// Longest message, in characters, after trimming.
    pub max_len: usize,
    /// Messages one sender may post per [`CHAT_WINDOW`].
    pub rate: u32,
    /// Messages a room keeps for those who join later.
    pub history: usize,
    /// Whether viewers (watch links) may write; they always read.
    pub viewers_write: bool,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_len: 1000,
            rate: 10,
            history: 100,
            viewers_write: false,
        }
    }
}

/// Why a message was not posted. The sentence completes nothing: it is shown as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChatRefusal {
    #[error(
        "viewers can read this room's chat but not write in it (the server runs without \
         --viewers-can-chat)"
    )]
    ViewerReadOnly,
    #[error(
        "too many chat messages: at most {rate} in {secs} seconds; this one was not sent",
        secs = CHAT_WINDOW.as_secs()
    )]
    RateLimited { rate: u32 },
    #[error("the message is {len} characters long; at most {max} are sent")]
    TooLong { len: usize, max: usize },
    #[error("an empty message is not sent")]
    Empty,
}

impl ChatRefusal {
    /// The stable code on the wire.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ChatRefusal::ViewerReadOnly => ErrorCode::Forbidden,
            ChatRefusal::RateLimited { .. } => ErrorCode::RateLimited,
            ChatRefusal::TooLong { .. } => ErrorCode::TooLarge,
            ChatRefusal::Empty => ErrorCode::BadMessage,
        }
    }
}

/// A message as the room keeps it.
#[derive(Debug, Clone)]
struct Kept {
    line: ChatLine,
    /// When it was posted (the shard's clock): its age is sent, never a clock reading.
    at: Instant,
}

/// One room's chat: its recent messages and who posted when.
#[derive(Debug, Default)]
pub(crate) struct ChatLog {
    /// The id of the next message; ids rise by one, so a page sees what it missed.
    next_id: u64,
    /// The last messages, oldest first.
    history: VecDeque<Kept>,
    /// Each sender's posts within the last [`CHAT_WINDOW`], oldest first.
    recent: HashMap<PeerId, VecDeque<Instant>>,
}

impl ChatLog {
    /// Posts `text` from `from` (shown as `name`) at `now`, or says why not. Trims the
    /// text and drops control characters other than line breaks.
    pub(crate) fn post(
        &mut self,
        now: Instant,
        limits: &ChatLimits,
        from: PeerId,
        name: &str,
        role: Role,
        text: &str,
    ) -> Result<ChatLine, ChatRefusal> {
        if role == Role::Viewer && !limits.viewers_write {
            return Err(ChatRefusal::ViewerReadOnly);
        }
        let text: String = text
            .trim()
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect();
        if text.is_empty() {
            return Err(ChatRefusal::Empty);
        }
        let len = text.chars().count();
        if len > limits.max_len {
            return Err(ChatRefusal::TooLong {
                len,
                max: limits.max_len,
            });
        }
        let recent = self.recent.entry(from).or_default();
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= CHAT_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= limits.rate as usize {
            return Err(ChatRefusal::RateLimited { rate: limits.rate });
        }
        recent.push_back(now);
        let line = ChatLine {
            id: self.next_id,
            from,
            name: name.to_string(),
            role,
            text,
            ago_ms: 0,
        };
        self.next_id += 1;
        if limits.history > 0 {
            if self.history.len() >= limits.history {
                self.history.pop_front();
            }
            self.history.push_back(Kept {
                line: line.clone(),
                at: now,
            });
        }
        Ok(line)
    }

    /// The kept messages, oldest first, each with its age at `now`.
    pub(crate) fn history(&self, now: Instant) -> Vec<ChatLine> {
        self.history
            .iter()
            .map(|k| ChatLine {
                ago_ms: now.saturating_duration_since(k.at).as_millis() as u64,
                ..k.line.clone()
            })
            .collect()
    }

    /// `id` left the room: its rate window goes (its messages stay).
    pub(crate) fn forget(&mut self, id: PeerId) {
        self.recent.remove(&id);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    fn limits() -> ChatLimits {
        ChatLimits {
            max_len: 10,
            rate: 3,
            history: 4,
            viewers_write: false,
        }
    }

    #[test]
    fn text_is_trimmed_and_checked() {
        let (mut log, l, now) = (ChatLog::default(), limits(), Instant::now());
        let line = log
            .post(now, &l, 1, "ann", Role::Participant, "  hi\u{7}\nyou \t")
            .unwrap();
        assert_eq!(line.text, "hi\nyou");
        assert_eq!(
            log.post(now, &l, 1, "ann", Role::Participant, " \t "),
            Err(ChatRefusal::Empty)
        );
        let long = "é".repeat(11);
        let e = log
            .post(now, &l, 1, "ann", Role::Participant, &long)
            .unwrap_err();
        assert_eq!(e, ChatRefusal::TooLong { len: 11, max: 10 });
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert!(log
            .post(now, &l, 1, "ann", Role::Participant, &"é".repeat(10))
            .is_ok());
    }

    #[test]
    fn a_sender_over_the_rate_is_refused_and_others_are_not() {
        let (mut log, l, t0) = (ChatLog::default(), limits(), Instant::now());
        for i in 0..3 {
            let t = t0 + Duration::from_secs(i);
            assert!(log.post(t, &l, 1, "ann", Role::Participant, "x").is_ok());
        }
        let e = log
            .post(
                t0 + Duration::from_secs(9),
                &l,
                1,
                "ann",
                Role::Participant,
                "x",
            )
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::RateLimited);
        assert!(e.to_string().contains("at most 3 in 10 seconds"), "{e}");
        assert!(log
            .post(
                t0 + Duration::from_secs(9),
                &l,
                2,
                "bob",
                Role::Participant,
                "y"
            )
            .is_ok());
        // The first post leaves the window after 10 s: one more fits.
        let t = t0 + Duration::from_secs(10);
        assert!(log.post(t, &l, 1, "ann", Role::Participant, "x").is_ok());
        assert!(log.post(t, &l, 1, "ann", Role::Participant, "x").is_err());
        // Refusals do not count, and the window never holds more than the rate.
        assert_eq!(log.recent[&1].len(), 3);
        log.forget(1);
        assert!(!log.recent.contains_key(&1));
    }

    #[test]
    fn history_keeps_the_last_messages_with_their_age() {
        let (mut log, l, t0) = (ChatLog::default(), limits(), Instant::now());
        for i in 0..6u64 {
            let t = t0 + Duration::from_secs(i * 5);
            log.post(t, &l, i, "n", Role::Participant, &format!("m{i}"))
                .unwrap();
        }
        let h = log.history(t0 + Duration::from_secs(30));
        let texts: Vec<_> = h.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["m2", "m3", "m4", "m5"]);
        assert_eq!(h[0].id, 2);
        assert_eq!(h[0].ago_ms, 20_000);
        assert_eq!(h[3].ago_ms, 5_000);
    }

    #[test]
    fn viewers_write_only_when_the_room_allows() {
        let (mut log, mut l, now) = (ChatLog::default(), limits(), Instant::now());
        let e = log.post(now, &l, 7, "v", Role::Viewer, "hi").unwrap_err();
        assert_eq!(e.code(), ErrorCode::Forbidden);
        assert!(e.to_string().contains("--viewers-can-chat"), "{e}");
        l.viewers_write = true;
        assert_eq!(
            log.post(now, &l, 7, "v", Role::Viewer, "hi").unwrap().role,
            Role::Viewer
        );
    }
}
