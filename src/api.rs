//! Who may see what on `/api/rooms` and `/metrics`. The engine's snapshots hold every
//! room, every participant's name and the addresses of their relayed legs; this module
//! decides, per request, what of it the caller gets:
//!
//! - anyone: the rooms not protected with `--room-token`, without addresses;
//! - a room's token (`Authorization: Bearer TOKEN` or `?token=TOKEN`): that room too,
//!   still without addresses (the token is in every participant's room link, so it
//!   must not show one participant where another is);
//! - the operator token (`--operator-token`, `--operator-token-file`): everything, and
//!   it is needed for `/metrics` when it is set.
//!
//! A protected room the caller may not see does not exist for them (`404` on
//! `/api/rooms/ROOM`, absent from the list), so its name and activity do not leak.

use axum::http::{header, HeaderMap};

use crate::sfu::shard::RoomSnapshot;
use crate::token::{matches, room_key};

/// The access rules, built once at start-up from the flags.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// `--operator-token`: sees every room and address, and `/metrics`.
    pub(crate) operator_token: Option<String>,
    /// `--room-token`, keyed by [`room_key`]: which rooms are hidden from callers
    /// without their token.
    pub(crate) room_tokens: Vec<(String, String)>,
}

/// What one request may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Gave the operator token.
    Operator,
    /// Gave no token, or the token of these rooms (keys by [`room_key`]; several
    /// rooms may share one token).
    Public { rooms: Vec<String> },
}

impl Access {
    /// The rules for `--operator-token` and `--room-token` pairs as given.
    pub(crate) fn new(operator_token: Option<String>, room_tokens: &[(String, String)]) -> Self {
        Access {
            operator_token,
            room_tokens: room_tokens
                .iter()
                .map(|(room, token)| (room_key(room), token.clone()))
                .collect(),
        }
    }

    /// Who the caller is, by the token it gave (`None`: none).
    pub(crate) fn audience(&self, token: Option<&str>) -> Audience {
        let Some(token) = token else {
            return Audience::Public { rooms: Vec::new() };
        };
        if self
            .operator_token
            .as_deref()
            .is_some_and(|op| matches(token, op))
        {
            return Audience::Operator;
        }
        // Every room's token is compared, so the time taken does not say which one
        // (if any) matched.
        let rooms = self
            .room_tokens
            .iter()
            .filter(|(_, t)| matches(token, t))
            .map(|(key, _)| key.clone())
            .collect();
        Audience::Public { rooms }
    }

    /// Whether `/metrics` answers this caller: anyone when no operator token is set,
    /// else the operator only.
    pub(crate) fn may_scrape(&self, audience: &Audience) -> bool {
        self.operator_token.is_none() || *audience == Audience::Operator
    }

    /// The rooms `audience` may see, with what it may see of them.
    pub(crate) fn filter(
        &self,
        audience: &Audience,
        rooms: Vec<RoomSnapshot>,
    ) -> Vec<RoomSnapshot> {
        let Audience::Public { rooms: opened } = audience else {
            return rooms;
        };
        rooms
            .into_iter()
            .filter(|r| {
                let key = room_key(&r.name);
                !self.room_tokens.iter().any(|(k, _)| *k == key) || opened.contains(&key)
            })
            .map(without_addresses)
            .collect()
    }
}

/// The room with the addresses of every participant's and viewer's relayed legs
/// removed (the selected candidate pair: the server's and the browser's IP:port).
fn without_addresses(mut room: RoomSnapshot) -> RoomSnapshot {
    for p in room.participants.iter_mut().chain(room.viewers.iter_mut()) {
        if let Some(relay) = p.relay.as_mut() {
            relay.local = None;
            relay.remote = None;
        }
    }
    room
}

/// The token a request carries: `Authorization: Bearer TOKEN`, else `?token=TOKEN`.
pub(crate) fn request_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    bearer.or(query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::shard::ParticipantSnapshot;
    use crate::signaling::protocol::{LegStats, Mode, PeerInfo, Role};

    fn room(name: &str) -> RoomSnapshot {
        let p = ParticipantSnapshot {
            info: PeerInfo::joining(1, "alice".into()),
            role: Role::Participant,
            relay_connected: true,
            up_tracks: 2,
            down_tracks: 0,
            relay: Some(LegStats {
                local: Some("192.0.2.1:8443".into()),
                remote: Some("192.0.2.7:50000".into()),
                ..LegStats::default()
            }),
            video_codec: Some("VP8"),
            cannot_decode: Vec::new(),
        };
        RoomSnapshot {
            name: name.into(),
            mode: Mode::Relay,
            capacity: 8,
            host: Some(1),
            locked: false,
            participants: vec![p.clone()],
            viewers: vec![p],
            comparison: None,
            edges: Vec::new(),
            cluster: None,
            recording: false,
        }
    }

    fn names(rooms: &[RoomSnapshot]) -> Vec<&str> {
        rooms.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn each_audience_sees_its_rooms() {
        let access = Access::new(
            Some("op".into()),
            &[("secret".into(), "s".into()), ("board".into(), "b".into())],
        );
        let all = || {
            vec![
                room("open"),
                room("Secret"),
                room("board"),
                room("ｂｏａｒｄ"),
            ]
        };

        let anyone = access.audience(None);
        let seen = access.filter(&anyone, all());
        assert_eq!(names(&seen), ["open"]);
        assert_eq!(
            access.filter(&access.audience(Some("nope")), all()).len(),
            1
        );

        let seen = access.filter(&access.audience(Some("b")), all());
        assert_eq!(names(&seen), ["open", "board", "ｂｏａｒｄ"]);
        for r in &seen {
            for p in r.participants.iter().chain(&r.viewers) {
                let relay = p.relay.as_ref().unwrap();
                assert_eq!((&relay.local, &relay.remote), (&None, &None), "{}", r.name);
            }
        }

        let op = access.audience(Some("op"));
        assert_eq!(op, Audience::Operator);
        let seen = access.filter(&op, all());
        assert_eq!(seen.len(), 4);
        let relay = seen[1].participants[0].relay.as_ref().unwrap();
        assert_eq!(relay.remote.as_deref(), Some("192.0.2.7:50000"));
    }

    #[test]
    fn metrics_need_the_operator_token_when_there_is_one() {
        let open = Access::new(None, &[]);
        assert!(open.may_scrape(&open.audience(None)));
        let closed = Access::new(Some("op".into()), &[("r".into(), "t".into())]);
        assert!(!closed.may_scrape(&closed.audience(None)));
        assert!(!closed.may_scrape(&closed.audience(Some("t"))));
        assert!(closed.may_scrape(&closed.audience(Some("op"))));
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(&h, None), None);
        assert_eq!(request_token(&h, Some("q")), Some("q"));
        h.insert(header::AUTHORIZATION, "Bearer  tok ".parse().unwrap());
        assert_eq!(request_token(&h, Some("q")), Some("tok"));
        h.insert(header::AUTHORIZATION, "Basic dXNlcg==".parse().unwrap());
        assert_eq!(request_token(&h, None), None);
    }
}
