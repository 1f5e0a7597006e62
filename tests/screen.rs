//! Screen sharing: a participant's share reaches the others as a second video track
//! whose offer entry says `source: screen`, and stops for everyone when it ends; one
//! share at a time per room (a second is refused and not forwarded, and accepted once
//! the first stops); a sharer who leaves ends its share; a WHEP player with one video
//! m-line gets the screen instead of the camera while a share is on, and the camera
//! again afterwards.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{start_server, tls_client, video_from, PeerCmd, Seen, TestPeer};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, HostAction, PeerId, Source};
use lanrelay::Server;
use lanrelay_peer::{Peer, PeerConfig, PeerEvent, PeerOutput, Track};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long a wait may take. Generous: on a loaded machine the in-process test
/// participants (all on the test's two runtime threads) fall seconds behind the
/// server, answering offers and reading their sockets late; a wait returns as soon as
/// its condition holds, so a healthy run is not slower for it.
const WAIT: Duration = Duration::from_secs(30);

/// Whether the server's latest offer to `s` says that `peer` sends a screen.
fn offers_screen_of(s: &Seen, peer: PeerId) -> bool {
    s.offer_owners
        .iter()
        .any(|o| o.peer == peer && o.source == Source::Screen)
}

/// Frames of `tag` that `p` receives during `d`.
async fn frames_during(p: &TestPeer, tag: &str, d: Duration) -> u64 {
    let before = video_from(&p.seen(), tag);
    tokio::time::sleep(d).await;
    video_from(&p.seen(), tag) - before
}

/// Waits until `p` has received more than 5 further frames of `tag`: the track goes
/// on arriving. (Not "within a second": on a loaded machine a receiver that was
/// just renegotiated, or whose loop lags, takes longer, and that is no failure.)
async fn keeps_arriving(p: &TestPeer, tag: &str) {
    let before = video_from(&p.seen(), tag);
    let what = format!("more frames of {tag} (had {before})");
    p.wait_for(&what, WAIT, |s| video_from(s, tag) > before + 5)
        .await;
}

/// Waits until `p` receives no frame of `tag` for a whole second. Frames sent before
/// a track ended may still be on their way, or unread in a lagging receiver's socket.
async fn goes_quiet(p: &TestPeer, tag: &str) {
    let end = Instant::now() + WAIT;
    loop {
        let n = frames_during(p, tag, Duration::from_secs(1)).await;
        if n == 0 {
            return;
        }
        assert!(Instant::now() < end, "{tag} still arrives: {n} frames/s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_reaches_the_others_as_a_screen_and_stops() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "screen", "a").await;
    let b = TestPeer::join(&server, "screen", "b").await;
    b.wait_for("a's camera", WAIT, |s| video_from(s, "a") > 10)
        .await;
    let a_id = a.seen().id;
    assert!(!offers_screen_of(&b.seen(), a_id), "a camera is no screen");

    a.command(PeerCmd::ShareScreen);
    b.wait_for("a's screen", WAIT, |s| video_from(s, "a+") > 10)
        .await;
    let s = b.seen();
    assert!(offers_screen_of(&s, a_id), "{:?}", s.offer_owners);
    assert_eq!(s.screens, vec![(a_id, true)], "the room hears of the share");
    let camera_mids: Vec<_> = s
        .offer_owners
        .iter()
        .filter(|o| o.peer == a_id && o.source == Source::Camera)
        .collect();
    assert_eq!(
        camera_mids.len(),
        1,
        "the camera stays: {:?}",
        s.offer_owners
    );
    // The camera still arrives.
    keeps_arriving(&b, "a").await;

    a.command(PeerCmd::StopScreen);
    b.wait_for("the share's end", WAIT, |s| {
        s.screens.contains(&(a_id, false)) && !offers_screen_of(s, a_id)
    })
    .await;
    goes_quiet(&b, "a+").await;
    keeps_arriving(&b, "a").await;
    assert!(a.seen().screen_refused.is_empty());
    a.leave().await;
    b.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_share_at_a_time() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "one-share", "Ann").await;
    let b = TestPeer::join(&server, "one-share", "b").await;
    let c = TestPeer::join(&server, "one-share", "c").await;
    b.wait_for("the cameras", WAIT, |s| {
        video_from(s, "Ann") > 10 && video_from(s, "c") > 10
    })
    .await;
    a.command(PeerCmd::ShareScreen);
    b.wait_for("Ann's screen", WAIT, |s| video_from(s, "Ann+") > 10)
        .await;

    c.command(PeerCmd::ShareScreen);
    c.wait_for("the refusal", WAIT, |s| !s.screen_refused.is_empty())
        .await;
    let (code, message) = c.seen().screen_refused[0].clone();
    assert_eq!(code, ErrorCode::ScreenBusy);
    assert_eq!(message, "Ann is already sharing a screen");
    let c_id = c.seen().id;
    assert_eq!(
        frames_during(&b, "c+", Duration::from_secs(2)).await,
        0,
        "a refused share is not forwarded"
    );
    let s = b.seen();
    assert!(!offers_screen_of(&s, c_id) && !s.screens.contains(&(c_id, true)));
    assert_eq!(video_from(&s, "c+"), 0);
    // Its page stops the share, as the refusal tells it to.
    c.command(PeerCmd::StopScreen);

    a.command(PeerCmd::StopScreen);
    b.wait_for("Ann's share to end", WAIT, |s| {
        s.screens.contains(&(a.seen().id, false))
    })
    .await;
    c.command(PeerCmd::ShareScreen);
    b.wait_for("c's screen", WAIT, |s| {
        video_from(s, "c+") > 10 && s.screens.contains(&(c_id, true)) && offers_screen_of(s, c_id)
    })
    .await;
    assert_eq!(c.seen().screen_refused.len(), 1, "accepted this time");
    for p in [a, b, c] {
        p.leave().await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharer_who_leaves_ends_the_share() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "share-leave", "a").await;
    let b = TestPeer::join(&server, "share-leave", "b").await;
    let c = TestPeer::join(&server, "share-leave", "c").await;
    b.wait_for("the cameras", WAIT, |s| {
        video_from(s, "a") > 10 && video_from(s, "c") > 10
    })
    .await;
    a.command(PeerCmd::ShareScreen);
    b.wait_for("a's screen", WAIT, |s| video_from(s, "a+") > 10)
        .await;
    let a_id = a.seen().id;
    a.leave().await;
    b.wait_for("a gone", WAIT, |s| s.left.iter().any(|(id, _)| *id == a_id))
        .await;
    // The room's one share is free again.
    c.command(PeerCmd::ShareScreen);
    b.wait_for("c's screen", WAIT, |s| video_from(s, "c+") > 10)
        .await;
    assert!(
        c.seen().screen_refused.is_empty(),
        "{:?}",
        c.seen().screen_refused
    );
    b.leave().await;
    c.leave().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_player_gets_the_screen_while_it_is_on() {
    let server = start_server(8).await;
    let a = TestPeer::join(&server, "whep-screen", "a").await;
    let player = WhepPlayer::start(&server, "whep-screen").await;
    player.wait_for("a's camera", |f| f("a") > 10).await;

    a.command(PeerCmd::ShareScreen);
    player.wait_for("a's screen", |f| f("a+") > 10).await;
    let camera = player.frames("a");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        player.frames("a") <= camera + 1,
        "its one video m-line carries the screen instead of the camera"
    );

    a.command(PeerCmd::StopScreen);
    let screen = player.frames("a+");
    let camera = player.frames("a");
    player
        .wait_for("a's camera again", |f| f("a") > camera + 10)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let screen_after = player.frames("a+");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(player.frames("a+"), screen_after, "the screen stopped");
    assert!(screen_after >= screen);
    a.leave().await;
    server.shutdown().await;
}

/// A WHEP player (one audio and one video m-line, receive-only): the shared str0m
/// participant on a loopback UDP socket, its offer POSTed to `/whep/ROOM`. Counts the
/// tagged video frames it receives, by sender tag.
struct WhepPlayer {
    frames: Arc<Mutex<HashMap<String, u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WhepPlayer {
    async fn start(server: &Server, room: &str) -> WhepPlayer {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = udp.local_addr().unwrap();
        let config = PeerConfig {
            local,
            rtp_mode: false,
            twcc: true,
            tcp: false,
            video: Codec::Vp8,
        };
        let mut peer = Peer::new(config, Instant::now()).unwrap();
        let (offer, _) = peer
            .offer(&[
                Track::new(MediaKind::Audio, Direction::RecvOnly),
                Track::new(MediaKind::Video, Direction::RecvOnly),
            ])
            .unwrap();
        let (status, answer) = post_sdp(server, &format!("/whep/{room}"), &offer).await;
        assert_eq!(status, 201, "{answer}");
        peer.accept_answer(&answer).unwrap();
        let frames = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(play(peer, udp, frames.clone()));
        WhepPlayer { frames, task }
    }

    fn frames(&self, tag: &str) -> u64 {
        self.frames.lock().unwrap().get(tag).copied().unwrap_or(0)
    }

    async fn wait_for(&self, what: &str, f: impl Fn(&dyn Fn(&str) -> u64) -> bool) {
        let end = Instant::now() + WAIT;
        while !f(&|tag| self.frames(tag)) {
            assert!(
                Instant::now() < end,
                "WHEP player: timed out waiting for {what}; frames: {:?}",
                self.frames.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for WhepPlayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn play(mut peer: Peer, udp: UdpSocket, frames: Arc<Mutex<HashMap<String, u64>>>) {
    let mut buf = vec![0u8; 2000];
    loop {
        let timeout = loop {
            match peer.poll() {
                Ok(PeerOutput::Timeout(t)) => break t,
                Ok(PeerOutput::Transmit(t)) => {
                    let _ = udp.try_send_to(&t.contents, t.destination);
                }
                Ok(PeerOutput::Event(PeerEvent::Frame(f))) => {
                    if let (MediaKind::Video, Some((tag, _))) = (f.kind, f.tagged) {
                        *frames.lock().unwrap().entry(tag).or_default() += 1;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        };
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout));
        tokio::select! {
            _ = sleep => peer.timeout(Instant::now()),
            r = udp.recv_from(&mut buf) => {
                let Ok((n, src)) = r else { continue };
                let local = peer.local();
                peer.receive(Instant::now(), src, local, &buf[..n]);
            }
        }
    }
}

/// POSTs an SDP offer over HTTPS; returns the status and the body.
async fn post_sdp(server: &Server, path: &str, sdp: &str) -> (u16, String) {
    let connector = tokio_rustls::TlsConnector::from(tls_client(server));
    let tcp = TcpStream::connect(server.https_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{sdp}",
        sdp.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_stops_a_share_and_can_allow_several() {
    let server = start_server(8).await;
    // Ann opened the room: she hosts.
    let ann = TestPeer::join(&server, "host-share", "Ann").await;
    let b = TestPeer::join(&server, "host-share", "b").await;
    let c = TestPeer::join(&server, "host-share", "c").await;
    b.wait_for("the cameras", WAIT, |s| {
        video_from(s, "Ann") > 10 && video_from(s, "c") > 10
    })
    .await;
    let c_id = c.seen().id;
    c.command(PeerCmd::ShareScreen);
    b.wait_for("c's screen", WAIT, |s| video_from(s, "c+") > 10)
        .await;

    // Not the host: refused, and the share goes on.
    let stop = |p: &TestPeer, action| {
        p.command(PeerCmd::Say(ClientMsg::Host {
            action,
            peer: Some(c_id),
        }))
    };
    stop(&b, HostAction::StopScreen);
    b.wait_for("notHost", WAIT, |s| {
        s.errors.iter().any(|(c, _)| *c == ErrorCode::NotHost)
    })
    .await;
    keeps_arriving(&b, "c+").await;

    // The host stops it: c is told, and nothing c sends after that is forwarded.
    stop(&ann, HostAction::StopScreen);
    c.wait_for("the stop", WAIT, |s| !s.screen_refused.is_empty())
        .await;
    assert_eq!(
        c.seen().screen_refused[0],
        (
            ErrorCode::ScreenStopped,
            "the host stopped your screen share".to_string()
        )
    );
    b.wait_for("c's share ended", WAIT, |s| {
        s.screens.contains(&(c_id, false))
    })
    .await;
    // c's page goes on sending until it renegotiates: nothing it sent after the
    // server stopped the share reaches b. (Frames sent before may still arrive late.)
    let sent_at_stop = c.seen().screen_sent_at_refusal[0];
    c.wait_for("c to send on", WAIT, |s| s.screen_sent > sent_at_stop + 30)
        .await;
    let last = b
        .seen()
        .last_counter
        .get(&("c+".into(), MediaKind::Video))
        .copied();
    assert!(
        last.is_some_and(|n| n <= sent_at_stop),
        "a stopped share is not forwarded: b got frame {last:?}, c was at {sent_at_stop} when stopped"
    );
    goes_quiet(&b, "c+").await;
    c.command(PeerCmd::StopScreen);

    // Several shares at once, once the host allows them.
    ann.command(PeerCmd::Say(ClientMsg::Host {
        action: HostAction::AllowShares,
        peer: None,
    }));
    ann.command(PeerCmd::ShareScreen);
    b.wait_for("Ann's screen", WAIT, |s| video_from(s, "Ann+") > 10)
        .await;
    c.command(PeerCmd::ShareScreen);
    b.wait_for("c's screen beside Ann's", WAIT, |s| {
        s.screens
            .iter()
            .filter(|(id, on)| *id == c_id && *on)
            .count()
            == 2
    })
    .await;
    keeps_arriving(&b, "c+").await;
    keeps_arriving(&b, "Ann+").await;
    assert_eq!(c.seen().screen_refused.len(), 1, "only the host's stop");
    for p in [ann, b, c] {
        p.leave().await;
    }
    server.shutdown().await;
}
