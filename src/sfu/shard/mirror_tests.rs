//! Tests of the home/mirror protocol: shards of two workers passing their link
//! messages in memory, on one clock.
#![allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere

use super::*;
use crate::sfu::shard::ShardConfig;

fn engine(worker: usize, viewer_capacity: usize) -> Shard {
    Shard::new(ShardConfig {
        candidates: vec!["127.0.0.1:5000".parse().unwrap()],
        tcp_candidates: vec![],
        room_capacity: 8,
        viewer_capacity,
        room_tokens: Default::default(),
        operator_token: None,
        worker,
        seed: worker as u64,
        connect_timeout: std::time::Duration::from_secs(30),
        direct_rate: 20,
        chat: Default::default(),
        record: None,
        bandwidth_estimation: true,
    })
}

/// Everything `from` produced: link messages for `to` delivered to it (and so on
/// until quiet); signals and closes returned per worker.
fn settle(engines: &mut [Shard], now: Instant) -> Vec<(usize, Output)> {
    let mut seen = Vec::new();
    loop {
        let mut moved = false;
        for w in 0..engines.len() {
            while let Some(out) = engines[w].poll_output() {
                moved = true;
                match out {
                    Output::Link(to, msg) => engines[to].handle_link(now, msg),
                    other => seen.push((w, other)),
                }
            }
        }
        if !moved {
            return seen;
        }
    }
}

fn signals(seen: &[(usize, Output)], id: PeerId) -> Vec<ServerMsg> {
    seen.iter()
        .filter_map(|(_, o)| match o {
            Output::Signal(i, m) if *i == id => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_far_viewer_is_admitted_counted_and_released() {
    let now = Instant::now();
    let mut e = vec![engine(0, 0), engine(1, 0)];
    e[0].join(
        now,
        1,
        "talk",
        "presenter",
        Role::Participant,
        Mode::Relay,
        (None, None),
    );
    e[1].join_mirrored(0, 2, "talk", "far", Mode::Auto, (None, None));
    let seen = settle(&mut e, now);
    let joined = signals(&seen, 2);
    assert!(
        matches!(&joined[..], [ServerMsg::Joined { peers, mode: Mode::Relay, .. }, ServerMsg::Room { host: Some(1), locked: false, .. }, ServerMsg::ChatHistory { can_write: false, .. }] if peers.len() == 1 && peers[0].name == "presenter"),
        "the far viewer gets the home's room, who hosts it, then its chat: {joined:?}"
    );
    assert!(signals(&seen, 1).contains(&ServerMsg::Viewers { count: 1 }));
    assert_eq!(
        (e[0].peer_count(), e[1].peer_count()),
        (1, 1),
        "stubs and stand-ins are not counted"
    );
    assert_eq!((e[0].room_count(), e[1].room_count()), (1, 0));
    let rooms: Vec<_> = e.iter().flat_map(|s| s.rooms_snapshot()).collect();
    let viewers: usize = rooms.iter().map(|r| r.viewers.len()).sum();
    let participants: usize = rooms.iter().map(|r| r.participants.len()).sum();
    assert_eq!((participants, viewers), (1, 1));

    // The presenter's name change of state reaches the far viewer through the home.
    e[0].handle_signal(now, 1, crate::signaling::protocol::ClientMsg::Leave);
    let seen = settle(&mut e, now);
    assert!(
        signals(&seen, 2)
            .iter()
            .any(|m| matches!(m, ServerMsg::PeerLeft { id: 1, .. })),
        "{seen:?}"
    );
    // The far viewer leaves: the home forgets it, the mirror closes.
    e[1].leave(now, 2, "left");
    let seen = settle(&mut e, now);
    assert!(seen
        .iter()
        .any(|(w, o)| *w == 1 && matches!(o, Output::Close(2))));
    assert!(e[0].peers.is_empty() && e[0].rooms.is_empty(), "home clean");
    assert!(e[1].peers.is_empty() && e[1].rooms.is_empty() && e[1].mirrored.is_empty());
}

#[test]
fn a_viewer_gone_before_its_admission_is_not_left_behind() {
    let now = Instant::now();
    let mut e = vec![engine(0, 0), engine(1, 0)];
    e[0].join(
        now,
        1,
        "talk",
        "presenter",
        Role::Participant,
        Mode::Relay,
        (None, None),
    );
    e[1].join_mirrored(0, 2, "talk", "far", Mode::Auto, (None, None));
    // It leaves before the home's answer arrives.
    let ask: Vec<Output> = std::iter::from_fn(|| e[1].poll_output()).collect();
    e[1].leave(now, 2, "left");
    for out in ask {
        if let Output::Link(to, msg) = out {
            e[to].handle_link(now, msg);
        }
    }
    let seen = settle(&mut e, now);
    assert!(
        signals(&seen, 2).is_empty(),
        "no joined for a viewer gone: {seen:?}"
    );
    assert_eq!(
        e[0].rooms.viewers("talk"),
        &[] as &[PeerId],
        "the home dropped it"
    );
    assert!(e[0].peers.keys().eq([&1]));
    assert!(e[1].peers.is_empty() && e[1].mirrored.is_empty());
}

#[test]
fn the_home_refuses_for_the_room() {
    let now = Instant::now();
    let mut e = vec![engine(0, 1), engine(1, 1)];
    e[0].join(
        now,
        1,
        "talk",
        "presenter",
        Role::Participant,
        Mode::Relay,
        (None, None),
    );
    e[0].join(
        now,
        2,
        "talk",
        "near",
        Role::Viewer,
        Mode::Auto,
        (None, None),
    );
    e[1].join_mirrored(0, 3, "talk", "far", Mode::Auto, (None, None));
    e[0].join(
        now,
        4,
        "call",
        "a",
        Role::Participant,
        Mode::Direct,
        (None, None),
    );
    e[1].join_mirrored(0, 5, "call", "watcher", Mode::Auto, (None, None));
    let seen = settle(&mut e, now);
    let full = signals(&seen, 3);
    assert!(
        matches!(&full[..], [ServerMsg::Error { code: ErrorCode::RoomFull, message }] if message.contains("maximum of 1 viewers")),
        "{full:?}"
    );
    let direct = signals(&seen, 5);
    assert!(
        matches!(&direct[..], [ServerMsg::Error { message, .. }] if message.contains("cannot be watched")),
        "{direct:?}"
    );
    for id in [3, 5] {
        assert!(seen
            .iter()
            .any(|(w, o)| *w == 1 && matches!(o, Output::Close(i) if *i == id)));
    }
    assert!(e[1].peers.is_empty() && e[1].pending_admits.is_empty());
    assert_eq!(e[0].rooms.viewers("talk"), &[2]);
}

/// A WHEP player's offer (receive video and audio), from a str0m peer.
fn whep_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _) = api.apply().expect("an offer");
    offer.to_sdp_string()
}

fn answers(seen: &[(usize, Output)], id: PeerId) -> Vec<&crate::sfu::shard::HttpAnswer> {
    seen.iter()
        .filter_map(|(_, o)| match o {
            Output::HttpAnswer(i, a) if *i == id => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn a_far_whep_player_is_answered_once_the_home_admits_it() {
    let now = Instant::now();
    let mut e = vec![engine(0, 1), engine(1, 1)];
    e[0].join(
        now,
        1,
        "talk",
        "presenter",
        Role::Participant,
        Mode::Relay,
        (None, None),
    );
    // Bad requests are refused on the spot, without asking the home.
    let bad = e[1].whep_mirrored(0, 2, "talk", None, "not sdp");
    assert!(matches!(bad, Err((ErrorCode::BadSdp, _))), "{bad:?}");
    assert!(e[1].poll_output().is_none());

    e[1].whep_mirrored(0, 3, "talk", None, &whep_offer())
        .expect("checked here");
    let seen = settle(&mut e, now);
    let a = answers(&seen, 3);
    let resource = match &a[..] {
        [Ok((resource, sdp))] if sdp.starts_with("v=0") => resource.clone(),
        _ => panic!("one answer with SDP: {a:?}"),
    };
    assert!(signals(&seen, 1).contains(&ServerMsg::Viewers { count: 1 }));
    assert_eq!(e[0].rooms.viewers("talk"), &[3], "the home counts it");
    assert_eq!(e[1].rooms_snapshot()[0].viewers.len(), 1, "served here");

    // The home's viewer cap (1) is reached: the next player hears so.
    e[1].whep_mirrored(0, 4, "talk", None, &whep_offer())
        .expect("checked here");
    let seen = settle(&mut e, now);
    let a = answers(&seen, 4);
    assert!(
        matches!(&a[..], [Err((ErrorCode::RoomFull, m))] if m.contains("maximum of 1 viewers")),
        "{a:?}"
    );
    assert!(!e[1].peers.contains_key(&4) && e[1].pending_admits.is_empty());

    // DELETE of the first player's resource ends it on the worker serving it,
    // and the home forgets it.
    assert!(!e[0].end_resource(now, &resource));
    assert!(e[1].end_resource(now, &resource));
    let seen = settle(&mut e, now);
    assert!(signals(&seen, 1).contains(&ServerMsg::Viewers { count: 0 }));
    assert_eq!(e[0].rooms.viewers("talk"), &[] as &[PeerId]);
    assert!(e[1].peers.is_empty() && e[1].mirrored.is_empty());
}

#[test]
fn viewers_near_and_far_hear_that_the_camera_went_off() {
    use crate::signaling::protocol::ClientMsg;
    let now = Instant::now();
    let mut e = vec![engine(0, 0), engine(1, 0)];
    e[0].join(
        now,
        1,
        "talk",
        "presenter",
        Role::Participant,
        Mode::Relay,
        (None, None),
    );
    e[0].join(
        now,
        2,
        "talk",
        "near",
        Role::Viewer,
        Mode::Auto,
        (None, None),
    );
    e[1].join_mirrored(0, 3, "talk", "far", Mode::Auto, (None, None));
    settle(&mut e, now);
    let off = ClientMsg::Media {
        audio: true,
        video: false,
    };
    e[0].handle_signal(now, 1, off);
    let seen = settle(&mut e, now);
    let camera_off = ServerMsg::PeerMedia {
        id: 1,
        audio: true,
        video: false,
    };
    for viewer in [2, 3] {
        assert!(
            signals(&seen, viewer).contains(&camera_off),
            "viewer {viewer} hears it: {seen:?}"
        );
    }
}
