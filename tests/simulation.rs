//! A whole room on a fake clock, twice: a simulcast publisher and two viewers join,
//! one viewer's link loses every tenth datagram for a second, that viewer switches
//! layers (low, then high), and the publisher leaves. What everyone is told, when, and
//! what arrives is checked, and both runs must tell exactly the same story: the
//! shard's time and randomness are inputs (a seeded generator), so a run replays.

#![allow(clippy::disallowed_methods)] // tests read the clock

#[path = "common/sim.rs"]
mod sim;

use lanrelay::signaling::protocol::{ClientMsg, Quality, Role};
use sim::Sim;

/// The layers the publisher sends, best first.
const RIDS: &[&str] = &["f", "h", "q"];

/// What one run produced: the transcript and what each viewer received.
fn run() -> (Vec<String>, usize, usize) {
    let mut sim = Sim::new(42);
    sim.join(1, Role::Participant, Some(RIDS));
    sim.join(2, Role::Viewer, None);
    sim.join(3, Role::Viewer, None);
    sim.connect();
    // Four seconds of video, a keyframe on every layer each second: the viewers
    // start on the small layer and move up once the layers are measured.
    for i in 0..120 {
        sim.frame(i % 30 == 0);
    }
    let got = |s: &Sim, id| s.member(id).stamps.len();
    assert!(
        got(&sim, 2) > 60 && got(&sim, 3) > 60,
        "both viewers play: {} {} {:#?}",
        got(&sim, 2),
        got(&sim, 3),
        sim.transcript
    );

    // Loss: every tenth datagram to viewer 2 is lost for a second; it plays on, and
    // nothing but the lost packets is missing. (Recovery by NACK is covered by
    // tests/retransmission.rs with frame-mode participants.)
    let before = got(&sim, 2);
    sim.loss = Some((2, 10));
    for _ in 0..30 {
        sim.frame(false);
    }
    sim.loss = None;
    for _ in 0..10 {
        sim.frame(false);
    }
    sim.pump(1000);
    let lost = sim.dropped.len();
    assert!(lost > 0, "the loss rule dropped something");
    assert!(
        got(&sim, 2) - before >= 40 - lost,
        "only the {lost} lost packets are missing"
    );

    // Layer switches, each on the next keyframe of the wanted layer (down at once).
    sim.say(
        2,
        ClientMsg::Quality {
            quality: Quality::Low,
        },
    );
    for i in 0..35 {
        sim.frame(i % 30 == 0);
    }
    // Up waits until the higher layer has fitted for two seconds.
    sim.say(
        2,
        ClientMsg::Quality {
            quality: Quality::High,
        },
    );
    for i in 0..90 {
        sim.frame(i % 30 == 0);
    }

    // The publisher leaves.
    sim.say(1, ClientMsg::Leave);
    sim.pump(500);
    let (a, b) = (got(&sim, 2), got(&sim, 3));
    (sim.transcript, a, b)
}

#[test]
fn a_room_replays_the_same_on_a_fake_clock() {
    let (first, a2, a3) = run();
    let seen = |what: &str, id: u64| {
        first
            .iter()
            .any(|l| l.contains(&format!("id={id} ")) && l.contains(what))
    };
    assert!(
        seen("layer 1 f", 3),
        "viewer 3 moved up to the best layer: {first:#?}"
    );
    assert!(
        seen("layer 1 q (you asked for low", 2),
        "viewer 2 moved to the low layer: {first:#?}"
    );
    assert!(
        seen("layer 1 f (you asked for high", 2),
        "and to the high one: {first:#?}"
    );
    assert!(
        seen("peer-left 1", 2) && seen("peer-left 1", 3),
        "{first:#?}"
    );
    assert!(seen("viewers 2", 1), "the publisher heard of its viewers");

    let (second, b2, b3) = run();
    assert_eq!(first, second, "the same story twice");
    assert_eq!((a2, a3), (b2, b3), "the same packets arrived");
}
