//! A participant whose signaling WebSocket drops (a phone changing networks, a locked
//! screen) stays in its call: its media goes on, and a new WebSocket that says
//! `resume` with the token of its `joined` takes it over with the same id. The others
//! never see it leave. A wrong token is refused; after the grace period the
//! participant leaves as before.

#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::{Duration, Instant};

use common::{connect_ws, expect_error, recv, send, temp_dir, PeerCmd, TestPeer};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, ServerMsg};
use str0m::media::MediaKind;

async fn start(grace: Duration) -> lanrelay::Server {
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.resume_grace = grace;
    lanrelay::start(config).await.expect("server starts")
}

async fn video_flows(to: &TestPeer, from: &TestPeer) {
    let base = to.frames_from(&from.tag, MediaKind::Video);
    to.wait_for(
        &format!("video from {}", from.tag),
        Duration::from_secs(15),
        |s| {
            s.frames
                .get(&(from.tag.clone(), MediaKind::Video))
                .copied()
                .unwrap_or(0)
                > base + 10
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_keeps_the_participant_and_nobody_sees_it_leave() {
    let server = start(Duration::from_secs(30)).await;
    let a = TestPeer::join(&server, "phone", "a").await;
    let b = TestPeer::join(&server, "phone", "b").await;
    video_flows(&a, &b).await;
    video_flows(&b, &a).await;
    let b_id = b.seen().id;
    assert!(
        b.seen().resume.is_some_and(|t| t.len() >= 32),
        "joined carries a resume token"
    );

    // The WebSocket goes; the media does not.
    b.command(PeerCmd::DropSignaling);
    tokio::time::sleep(Duration::from_secs(2)).await;
    video_flows(&a, &b).await;
    video_flows(&b, &a).await;

    // Someone joins while b is away: the server's offer of c's tracks to b is lost
    // with the old connection.
    let c = TestPeer::join(&server, "phone", "c").await;
    let c_id = c.seen().id;
    video_flows(&c, &b).await;

    // A new connection resumes b: the same id, the room as it is now, and the offer
    // again.
    b.command(PeerCmd::Resume(Box::new(connect_ws(&server).await)));
    b.wait_for("a fresh joined", Duration::from_secs(5), |s| {
        !s.resumed_as.is_empty()
    })
    .await;
    assert_eq!(b.seen().resumed_as, vec![b_id], "same participant");
    video_flows(&b, &c).await;

    // Signaling goes on over the new connection.
    let d = TestPeer::join(&server, "phone", "d").await;
    b.wait_for("d joined", Duration::from_secs(5), |s| {
        s.joined.contains(&d.seen().id)
    })
    .await;
    video_flows(&b, &d).await;
    assert!(
        !b.seen().joined.contains(&c_id),
        "c came in the fresh joined"
    );

    // A second resume while the first connection is still open takes it over too.
    b.command(PeerCmd::Resume(Box::new(connect_ws(&server).await)));
    b.wait_for("a second fresh joined", Duration::from_secs(5), |s| {
        s.resumed_as.len() == 2
    })
    .await;
    video_flows(&a, &b).await;

    assert!(
        a.seen().left.is_empty() && c.seen().left.is_empty() && d.seen().left.is_empty(),
        "nobody saw b leave: {:?} {:?} {:?}",
        a.seen().left,
        c.seen().left,
        d.seen().left
    );
    assert_eq!(
        a.seen().joined.iter().filter(|id| **id == b_id).count(),
        1,
        "nor join again"
    );
    assert_eq!(server.engine.status().await.unwrap().participants, 4);
    let (_, metrics) = common::https_get(&server, "/metrics").await;
    assert!(
        metrics.contains("\nlanrelay_resumed_total 2\n"),
        "{metrics}"
    );

    // Leaving is still leaving, at once.
    b.leave().await;
    a.wait_for("b left", Duration::from_secs(5), |s| {
        s.left.iter().any(|(id, why)| *id == b_id && why == "left")
    })
    .await;
    a.leave().await;
    c.leave().await;
    d.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused() {
    let server = start(Duration::from_secs(30)).await;
    let a = TestPeer::join(&server, "locked", "a").await;
    for token in ["", "nope", &"0".repeat(32)] {
        let mut ws = connect_ws(&server).await;
        send(
            &mut ws,
            &ClientMsg::Resume {
                token: token.into(),
            },
        )
        .await;
        let message = expect_error(&mut ws, ErrorCode::ResumeRefused).await;
        assert!(message.contains("join again"), "{message}");
        assert!(recv(&mut ws).await.is_none(), "the connection closes");
    }
    // A resume is a first message only.
    let mut ws = connect_ws(&server).await;
    send(
        &mut ws,
        &ClientMsg::Join {
            room: "locked".into(),
            name: "d".into(),
            role: Default::default(),
            mode: Default::default(),
            token: None,
            host_token: None,
        },
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        Some(ServerMsg::Joined { .. })
    ));
    let token = a.seen().resume.unwrap();
    send(&mut ws, &ClientMsg::Resume { token }).await;
    expect_error(&mut ws, ErrorCode::BadState).await;
    assert!(a.seen().resumed_as.is_empty(), "a was not taken over");
    let (_, metrics) = common::https_get(&server, "/metrics").await;
    assert!(
        metrics.contains("lanrelay_refused_total{limit=\"resume_token\"} 3\n"),
        "{metrics}"
    );
    a.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_grace_period_the_participant_is_gone() {
    let grace = Duration::from_secs(2);
    let server = start(grace).await;
    let a = TestPeer::join(&server, "gone", "a").await;
    let b = TestPeer::join(&server, "gone", "b").await;
    video_flows(&a, &b).await;
    let b_id = b.seen().id;
    let token = b.seen().resume.unwrap();
    b.command(PeerCmd::DropSignaling);
    let t0 = Instant::now();
    a.wait_for("b's leave", Duration::from_secs(10), |s| {
        s.left.iter().any(|(id, _)| *id == b_id)
    })
    .await;
    let took = t0.elapsed();
    eprintln!("left {took:?} after its connection dropped");
    assert!(took >= grace - Duration::from_millis(200), "{took:?}");
    assert_eq!(
        a.seen().left,
        vec![(b_id, "disconnected".to_string())],
        "the reason is as before"
    );
    assert_eq!(server.engine.status().await.unwrap().participants, 1);
    // The token died with the participant.
    let mut ws = connect_ws(&server).await;
    send(&mut ws, &ClientMsg::Resume { token }).await;
    expect_error(&mut ws, ErrorCode::ResumeRefused).await;
    a.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_grace_period_there_is_no_token() {
    let server = start(Duration::ZERO).await;
    let a = TestPeer::join(&server, "plain", "a").await;
    assert_eq!(a.seen().resume, None);
    a.leave().await;
    server.shutdown().await;
}
