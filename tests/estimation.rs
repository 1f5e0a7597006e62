//! The server estimates the bandwidth towards a receiver only while the estimate has
//! something to decide: which simulcast layer it gets. A viewer of a single-layer
//! publisher gets packets without the transport-wide sequence number (so its browser
//! sends no feedback, and the server runs no estimator for it); once it receives a
//! simulcast publisher the estimation comes back, and it goes again when that
//! publisher leaves. Real str0m peers on a fake clock (`tests/common/sim.rs`).

#[path = "common/sim.rs"]
mod sim;

use lanrelay::signaling::protocol::{ClientMsg, Role};
use sim::Sim;

fn frames(sim: &mut Sim, n: usize) {
    for i in 0..n {
        sim.frame(i % 30 == 0);
    }
}

/// A second of video to settle (a layer choice at the latest by the next tick),
/// then two more: the video packets viewer `id` received in those two, (with,
/// without) a transport-wide sequence number.
fn stretch(sim: &mut Sim, id: u64) -> (u64, u64) {
    frames(sim, 30);
    let count = |s: &Sim| {
        let m = s.member(id);
        (m.with_transport_seq, m.without_transport_seq)
    };
    let before = count(sim);
    frames(sim, 60);
    let after = count(sim);
    (after.0 - before.0, after.1 - before.1)
}

#[test]
fn estimation_runs_only_while_a_receiver_has_layers_to_choose() {
    let mut sim = Sim::new(7);
    sim.twcc = true;
    sim.join(1, Role::Participant, Some(&[]));
    sim.join(2, Role::Viewer, None);
    sim.connect();
    // The first layer choice (its track opening, or the next tick) pauses it.
    let (with, without) = stretch(&mut sim, 2);
    assert!(without >= 50, "the viewer plays: {without} packets");
    assert_eq!(
        with, 0,
        "single-layer video only: no transport-wide sequence numbers"
    );

    // A simulcast publisher: the viewer has layers to choose, the estimate decides.
    sim.join(3, Role::Participant, Some(&["f", "h", "q"]));
    sim.connect();
    let (with, without) = stretch(&mut sim, 2);
    assert!(
        with >= 50 && without == 0,
        "estimating again: {with} packets with the sequence number, {without} without"
    );
    assert!(
        sim.transcript
            .iter()
            .any(|l| l.contains("id=2 ") && l.contains("fits your link (estimate")),
        "the viewer's layer follows its estimate: {:#?}",
        sim.transcript
    );

    // The simulcast publisher leaves: nothing to choose again (by the next tick).
    sim.say(3, ClientMsg::Leave);
    let (with, without) = stretch(&mut sim, 2);
    assert!(
        without >= 50 && with == 0,
        "paused again: {with} with, {without} without"
    );
}
