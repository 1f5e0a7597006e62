//! STUN from another host cannot steer a call's media. During a call (a publisher and
//! a viewer, real str0m participants wired to one shard in memory on a fake clock, and
//! again through a running server on loopback),
//! binding requests arrive from an attacker's address: one with the viewer's real
//! server ufrag but a wrong password, one with a forged ufrag, a real request of the
//! viewer's replayed, and a correctly signed request of the publisher's session
//! spoofed from the viewer's address. After each, the viewer keeps receiving every
//! packet, nothing is sent to the attacker, and the refusals are counted.

#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;
#[path = "common/sim.rs"]
mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use common::{start_server, video_from, TestPeer};
use lanrelay::signaling::protocol::Role;
use sim::Sim;
use str0m::ice::{StunMessage, TransId};

const ATTACKER: &str = "10.0.9.9:6666";

fn sha1_hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// A binding request to the server's `ufrag`, signed with `pass`, nominating.
fn binding_request(ufrag: &str, pass: &str) -> Vec<u8> {
    let username = format!("{ufrag}:attacker");
    let msg = StunMessage::binding_request(&username, TransId::new(), true, 7, 2_130_706_431, true);
    let mut buf = vec![0u8; 512];
    let n = msg
        .to_bytes(Some(pass.as_bytes()), &mut buf, sha1_hmac)
        .unwrap();
    buf.truncate(n);
    buf
}

/// The viewer receives every one of ten frames the publisher sends now.
fn viewer_keeps_receiving(sim: &mut Sim, what: &str) {
    let before = sim.member(2).stamps.len();
    for _ in 0..10 {
        sim.frame(false);
    }
    assert_eq!(
        sim.member(2).stamps.len() - before,
        10,
        "after {what}: the viewer receives every packet"
    );
    let attacker: SocketAddr = ATTACKER.parse().unwrap();
    assert!(
        !sim.strays.contains(&attacker),
        "after {what}: nothing went to the attacker"
    );
}

#[test]
fn binding_requests_from_another_host_do_not_move_the_media() {
    let mut sim = Sim::new(7);
    sim.join(1, Role::Participant, Some(&[]));
    sim.join(2, Role::Viewer, None);
    sim.connect();
    sim.frame(true);
    viewer_keeps_receiving(&mut sim, "the call started");
    let attacker: SocketAddr = ATTACKER.parse().unwrap();
    let refused = |s: &Sim| s.shard.counters().stun_refused;

    // The viewer's real server ufrag, a wrong password.
    let ufrag = sim.member(2).server_ufrag.clone();
    sim.inject(
        attacker,
        &binding_request(&ufrag, "not-the-password-at-all"),
    );
    assert_eq!(refused(&sim), 1, "a wrong MESSAGE-INTEGRITY is refused");
    viewer_keeps_receiving(&mut sim, "a wrong password");

    // A forged ufrag naming this worker.
    let unroutable = sim.shard.counters().unroutable;
    sim.inject(attacker, &binding_request("Aforgedforgedfo", "whatever"));
    assert_eq!(sim.shard.counters().unroutable, unroutable + 1);
    viewer_keeps_receiving(&mut sim, "a forged ufrag");

    // A real request of the viewer's, replayed from the attacker's address.
    sim.pump(6000);
    let replay = sim.member(2).last_check.clone().expect("the viewer checks");
    sim.inject(attacker, &replay);
    assert_eq!(refused(&sim), 2, "a replay from another address is refused");
    viewer_keeps_receiving(&mut sim, "a replayed request");

    // The publisher's own, correctly signed credentials, spoofed from the viewer's
    // address: an address another peer holds is not taken.
    let (u, p) = (
        sim.member(1).server_ufrag.clone(),
        sim.member(1).server_pass.clone(),
    );
    let viewer = sim.member(2).peer.local();
    sim.inject(viewer, &binding_request(&u, &p));
    assert_eq!(
        refused(&sim),
        3,
        "an address held by another peer is refused"
    );
    viewer_keeps_receiving(&mut sim, "a spoofed address");
}

/// The same through a running server and real sockets on loopback: binding requests
/// from another socket, with the viewer's real server ufrag and a wrong password and
/// with a forged ufrag, leave the call alone and are counted.
#[tokio::test]
async fn forged_binding_requests_from_another_socket_are_refused() {
    let server = start_server(8).await;
    let alice = TestPeer::join(&server, "forged", "alice").await;
    let bob = TestPeer::join(&server, "forged", "bob").await;
    bob.wait_for("alice's video", Duration::from_secs(15), |s| {
        video_from(s, "alice") >= 10
    })
    .await;
    let ufrag = bob.seen().server_ufrag.expect("the server's answer");
    let media = server.candidates[0];
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let before = video_from(&bob.seen(), "alice");
    for _ in 0..20 {
        let wrong = binding_request(&ufrag, "not-the-password-at-all");
        attacker.send_to(&wrong, media).await.unwrap();
        let forged = binding_request(&format!("{}forged", &ufrag[..1]), "x");
        attacker.send_to(&forged, media).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bob.wait_for("more of alice's video", Duration::from_secs(5), |s| {
        video_from(s, "alice") > before + 20
    })
    .await;
    let status = server.engine.status().await.unwrap();
    assert_eq!(
        status.stun_refused, 20,
        "every wrong password refused: {status:?}"
    );
    assert!(status.unroutable_datagrams >= 20, "{status:?}");
    // Nothing came back to the attacker: no STUN answer, no media.
    let mut buf = [0u8; 2048];
    let answer =
        tokio::time::timeout(Duration::from_millis(300), attacker.recv_from(&mut buf)).await;
    assert!(
        answer.is_err(),
        "the server answered the attacker: {answer:?}"
    );
    assert_eq!(alice.seen().corrupt + bob.seen().corrupt, 0);
    alice.leave().await;
    bob.leave().await;
    server.shutdown().await;
}

/// Even with the right password (say, an attacker's own WHIP session), requests from a
/// hundred new addresses at once are not all taken: a burst of new addresses is, the
/// rest are refused, so a peer's ICE agent never tracks thousands of sources and the
/// cost of its checks stays flat. The call carries on.
#[test]
fn new_addresses_are_taken_at_a_device_pace() {
    let mut sim = Sim::new(9);
    sim.join(1, Role::Participant, Some(&[]));
    sim.join(2, Role::Viewer, None);
    sim.connect();
    sim.frame(true);
    let (u, p) = (
        sim.member(2).server_ufrag.clone(),
        sim.member(2).server_pass.clone(),
    );
    for i in 0..100u16 {
        let from: SocketAddr = format!("10.0.7.1:{}", 20_000 + i).parse().unwrap();
        sim.inject(from, &binding_request(&u, &p));
    }
    let refused = sim.shard.counters().stun_refused;
    assert!(
        (90..100).contains(&refused),
        "a burst taken, the rest refused: {refused}"
    );
    let answered = sim.strays.len();
    assert!(answered < 10, "only the burst was answered: {answered}");
    viewer_keeps_receiving(&mut sim, "a hundred new addresses");
}
