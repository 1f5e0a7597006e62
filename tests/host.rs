//! The room's host, with str0m participants over the real signaling and UDP: the
//! host mutes a participant (the others stop receiving its audio while it keeps
//! sending; its own unmute is refused until the host allows it), a participant that is
//! not the host is refused and nothing changes, the host removes one and locks the
//! room (a new join is refused, a host-token holder gets in), and the role passes on
//! when the host leaves or hands it over.

mod common;

use std::time::Duration;

use common::{connect_ws, https_get_with, recv, send, temp_dir, PeerCmd, TestPeer};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, HostAction, PeerId, Role, ServerMsg};
use str0m::media::MediaKind;

const OPERATOR: &str = "op-token-for-tests";
const WAIT: Duration = Duration::from_secs(10);

async fn server() -> lanrelay::Server {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = lanrelay::Config::loopback(temp_dir("host"));
    config.operator_token = Some(OPERATOR.into());
    lanrelay::start(config).await.expect("server starts")
}

fn host(p: &TestPeer, action: HostAction, peer: Option<PeerId>) {
    p.command(PeerCmd::Say(ClientMsg::Host { action, peer }));
}

/// The latest `room` message `p` got: (host, locked).
fn room_of(p: &TestPeer) -> Option<(Option<PeerId>, bool)> {
    p.seen().room.last().copied()
}

fn audio_from(p: &TestPeer, tag: &str) -> u64 {
    p.frames_from(tag, MediaKind::Audio)
}

/// Waits until `p` receives audio from `tag` again (rising for half a second).
async fn audio_flows(p: &TestPeer, tag: &str) {
    let start = audio_from(p, tag);
    p.wait_for(&format!("audio from {tag}"), WAIT, |s| {
        s.frames
            .get(&(tag.to_string(), MediaKind::Audio))
            .copied()
            .unwrap_or(0)
            > start + 20
    })
    .await;
}

/// Audio from `tag` stops rising at `p` (at most a few packets in flight), and stays
/// stopped for a second.
async fn audio_stopped(p: &TestPeer, tag: &str) {
    let mut last = audio_from(p, tag);
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = audio_from(p, tag);
        if now == last {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "audio from {tag} never stopped"
        );
        last = now;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        audio_from(p, tag),
        last,
        "audio from {tag} came back by itself"
    );
}

/// A `/metrics` sample.
async fn metric(server: &lanrelay::Server, sample: &str) -> f64 {
    let auth = format!("Bearer {OPERATOR}");
    let (status, _, body) =
        https_get_with(server, "/metrics", &[("Authorization", auth.as_str())]).await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in /metrics"))
}

async fn all_connected(peers: &[&TestPeer]) {
    for p in peers {
        p.wait_for("media connected", WAIT, |s| s.connected).await;
    }
}

#[tokio::test]
async fn the_host_mutes_and_only_an_allowed_participant_unmutes() {
    let server = server().await;
    let a = TestPeer::join(&server, "meet", "a").await;
    let b = TestPeer::join(&server, "meet", "b").await;
    let c = TestPeer::join(&server, "meet", "c").await;
    all_connected(&[&a, &b, &c]).await;
    let (ida, idb) = (a.seen().id, b.seen().id);
    for p in [&a, &b, &c] {
        p.wait_for("room: a hosts", WAIT, |s| {
            s.room.last() == Some(&(Some(ida), false))
        })
        .await;
    }
    audio_flows(&c, "b").await;

    host(&a, HostAction::Mute, Some(idb));
    b.wait_for("held audio by a", WAIT, |s| {
        s.held == Some((true, false, ida))
    })
    .await;
    c.wait_for("peerMedia: b's audio off", WAIT, |s| {
        s.peer_media.contains(&(idb, false, true))
    })
    .await;
    // B keeps sending; C's packets from B stop.
    audio_stopped(&c, "b").await;
    let video = c.frames_from("b", MediaKind::Video);
    c.wait_for("video from b still", WAIT, |s| {
        s.frames
            .get(&("b".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            > video + 10
    })
    .await;

    // B's own unmute is refused and forwarding stays off.
    b.command(PeerCmd::Say(ClientMsg::Media {
        audio: true,
        video: true,
    }));
    b.wait_for("heldByHost", WAIT, |s| {
        s.errors.iter().any(|(c, _)| *c == ErrorCode::HeldByHost)
    })
    .await;
    audio_stopped(&c, "b").await;
    assert!(
        !c.seen().peer_media.contains(&(idb, true, true)),
        "nobody was told b's microphone is on"
    );

    // Allowed: B may unmute, but nothing flows until it does.
    host(&a, HostAction::AllowUnmute, Some(idb));
    b.wait_for("held released", WAIT, |s| {
        s.held == Some((false, false, ida))
    })
    .await;
    audio_stopped(&c, "b").await;
    b.command(PeerCmd::Say(ClientMsg::Media {
        audio: true,
        video: true,
    }));
    c.wait_for("peerMedia: b's audio on", WAIT, |s| {
        s.peer_media.contains(&(idb, true, true))
    })
    .await;
    audio_flows(&c, "b").await;
    audio_flows(&a, "b").await;
}

#[tokio::test]
async fn a_participant_that_is_not_the_host_is_refused() {
    let server = server().await;
    let a = TestPeer::join(&server, "order", "a").await;
    let b = TestPeer::join(&server, "order", "b").await;
    let c = TestPeer::join(&server, "order", "c").await;
    all_connected(&[&a, &b, &c]).await;
    let (ida, idc) = (a.seen().id, c.seen().id);
    audio_flows(&b, "c").await;
    let before = metric(&server, "lanrelay_refused_total{limit=\"not_host\"}").await;
    for (action, peer) in [
        (HostAction::Mute, Some(idc)),
        (HostAction::StopVideo, Some(idc)),
        (HostAction::Remove, Some(idc)),
        (HostAction::MakeHost, Some(b.seen().id)),
        (HostAction::Lock, None),
    ] {
        host(&b, action, peer);
    }
    b.wait_for("five notHost refusals", WAIT, |s| {
        s.errors
            .iter()
            .filter(|(c, _)| *c == ErrorCode::NotHost)
            .count()
            == 5
    })
    .await;
    let (_, message) = b.seen().errors[0].clone();
    assert!(message.contains("host is a"), "{message}");
    let after = metric(&server, "lanrelay_refused_total{limit=\"not_host\"}").await;
    assert_eq!(after - before, 5.0);
    // Nothing changed: c is still heard and in the room, a still hosts, not locked.
    audio_flows(&b, "c").await;
    assert!(c.seen().held.is_none());
    assert!(b.seen().left.is_empty());
    assert_eq!(room_of(&c), Some((Some(ida), false)));
    let late = TestPeer::join(&server, "order", "late").await;
    late.wait_for("joined an unlocked room", WAIT, |s| {
        s.room.last() == Some(&(Some(ida), false))
    })
    .await;
    // A peer that is not in the room.
    host(&a, HostAction::Mute, Some(999_999));
    a.wait_for("noSuchPeer", WAIT, |s| {
        s.errors.iter().any(|(c, _)| *c == ErrorCode::NoSuchPeer)
    })
    .await;
}

/// Joins `room` on a bare WebSocket; returns the first error, or `None` if joined.
async fn try_join(
    server: &lanrelay::Server,
    room: &str,
    role: Role,
    host_token: Option<&str>,
) -> Option<(ErrorCode, String)> {
    let mut ws = connect_ws(server).await;
    let join = ClientMsg::Join {
        room: room.into(),
        name: "knock".into(),
        role,
        mode: Default::default(),
        token: None,
        host_token: host_token.map(String::from),
    };
    send(&mut ws, &join).await;
    match tokio::time::timeout(WAIT, recv(&mut ws))
        .await
        .expect("an answer")
    {
        Some(ServerMsg::Joined { .. }) => None,
        Some(ServerMsg::Error { code, message }) => {
            let closed = tokio::time::timeout(WAIT, recv(&mut ws)).await;
            assert!(matches!(closed, Ok(None)), "the socket closes: {closed:?}");
            Some((code, message))
        }
        other => panic!("expected joined or an error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_host_removes_and_locks() {
    let server = server().await;
    let a = TestPeer::join(&server, "locked", "a").await;
    let b = TestPeer::join(&server, "locked", "b").await;
    let c = TestPeer::join(&server, "locked", "c").await;
    all_connected(&[&a, &b, &c]).await;
    let (ida, idb) = (a.seen().id, b.seen().id);
    let token = b.seen().resume.expect("a resume token");

    host(&a, HostAction::Lock, None);
    for p in [&a, &b, &c] {
        p.wait_for("room locked", WAIT, |s| {
            s.room.last() == Some(&(Some(ida), true))
        })
        .await;
    }
    host(&a, HostAction::Remove, Some(idb));
    b.wait_for("removed", WAIT, |s| {
        s.errors
            .iter()
            .any(|(c, m)| *c == ErrorCode::Removed && m.contains("removed you"))
    })
    .await;
    c.wait_for("peerLeft removed", WAIT, |s| {
        s.left.contains(&(idb, "removed".to_string()))
    })
    .await;
    audio_stopped(&c, "b").await;

    // Its resume token is dead.
    let mut ws = connect_ws(&server).await;
    send(&mut ws, &ClientMsg::Resume { token }).await;
    match recv(&mut ws).await {
        Some(ServerMsg::Error { code, .. }) => assert_eq!(code, ErrorCode::ResumeRefused),
        other => panic!("expected resumeRefused, got {other:?}"),
    }

    // New participants and viewers are refused, with the room's name.
    let (code, message) = try_join(&server, "locked", Role::Participant, None)
        .await
        .expect("refused");
    assert_eq!(code, ErrorCode::RoomLocked);
    assert_eq!(message, "room \"locked\" is locked by its host");
    let refused = try_join(&server, "locked", Role::Viewer, Some("wrong")).await;
    assert_eq!(refused.map(|r| r.0), Some(ErrorCode::RoomLocked));

    // A holder of the operator token gets in, and takes the role.
    let d = TestPeer::join_host(&server, "locked", "d", OPERATOR).await;
    let idd = d.seen().id;
    d.wait_for("d hosts", WAIT, |s| {
        s.room.last() == Some(&(Some(idd), true))
    })
    .await;
    a.wait_for("a hears d hosts", WAIT, |s| {
        s.room.last() == Some(&(Some(idd), true))
    })
    .await;
    let auth = format!("Bearer {OPERATOR}");
    let (_, _, rooms) =
        https_get_with(&server, "/api/rooms", &[("Authorization", auth.as_str())]).await;
    let rooms: serde_json::Value = serde_json::from_str(&rooms).unwrap();
    assert_eq!(rooms[0]["host"], idd);
    assert_eq!(rooms[0]["locked"], true);

    host(&d, HostAction::Unlock, None);
    c.wait_for("unlocked", WAIT, |s| {
        s.room.last() == Some(&(Some(idd), false))
    })
    .await;
    assert!(try_join(&server, "locked", Role::Viewer, None)
        .await
        .is_none());
}

#[tokio::test]
async fn the_role_passes_on_and_is_handed_over() {
    let server = server().await;
    let a = TestPeer::join(&server, "pass", "a").await;
    let b = TestPeer::join(&server, "pass", "b").await;
    let c = TestPeer::join(&server, "pass", "c").await;
    let v = TestPeer::join_as(&server, "pass", "v", Role::Viewer).await;
    all_connected(&[&a, &b, &c]).await;
    let (ida, idb, idc) = (a.seen().id, b.seen().id, c.seen().id);
    v.wait_for("viewer hears a hosts", WAIT, |s| {
        s.room.last() == Some(&(Some(ida), false))
    })
    .await;

    a.leave().await;
    for p in [&b, &c, &v] {
        p.wait_for("b, present longest, hosts", WAIT, |s| {
            s.room.last() == Some(&(Some(idb), false))
        })
        .await;
    }
    host(&b, HostAction::MakeHost, Some(idc));
    for p in [&b, &c, &v] {
        p.wait_for("c hosts", WAIT, |s| {
            s.room.last() == Some(&(Some(idc), false))
        })
        .await;
    }
    // b is no longer host.
    host(&b, HostAction::Lock, None);
    b.wait_for("notHost", WAIT, |s| {
        s.errors.iter().any(|(c, _)| *c == ErrorCode::NotHost)
    })
    .await;
    // The camera: stopped, refused, allowed, turned on again.
    host(&c, HostAction::StopVideo, Some(idb));
    b.wait_for("held video", WAIT, |s| s.held == Some((false, true, idc)))
        .await;
    v.wait_for("peerMedia: b's video off", WAIT, |s| {
        s.peer_media.contains(&(idb, true, false))
    })
    .await;
}
