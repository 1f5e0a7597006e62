//! Forwarded video goes out as it arrives: the server does not pace it to a receiver's
//! bandwidth estimate. A publisher's browser paces its own encoder; a relay that paced
//! again could only add delay (a keyframe burst spread over a hundred milliseconds, or
//! queued for seconds behind a low estimate), since it cannot slow the encoder for one
//! receiver. The estimate picks simulcast layers instead.
//!
//! Each forwarded packet is sent as it is written (str0m's `write_rtp_at`, patched in
//! `crates/str0m`), so it leaves with the datagram that brought it, and the engine
//! asks for no turn of the receivers' `Rtc`s per packet.
//!
//! Real str0m peers wired to the engine in memory on a fake clock, so "at once" is
//! exact: no time passes while the burst is forwarded.

#[path = "common/in_memory.rs"]
mod in_memory;

use in_memory::Harness;

/// 100 packets of 1,100 bytes, as fast as the publisher can send them (10 µs apart):
/// 110 kB, a large keyframe. str0m's pacer, at the 5 Mbit/s a receiver's estimate
/// starts at, would let about 27 kB through at once (40 ms of debt) and spread the
/// rest over some 150 ms.
const BURST: usize = 100;

fn forward_burst(h: &mut Harness) -> usize {
    (0..BURST)
        .map(|_| {
            let p = h.publish(false);
            h.feed(&p)
        })
        .sum()
}

#[test]
fn a_burst_of_video_reaches_every_viewer_at_once() {
    let mut h = Harness::new(3);
    let sent = forward_burst(&mut h);
    assert_eq!(
        sent,
        BURST * 3,
        "every packet to every viewer, without waiting"
    );
}

#[test]
fn a_burst_reaches_viewers_on_another_worker_at_once() {
    let mut h = Harness::spread(4, 2);
    let sent = forward_burst(&mut h);
    assert_eq!(
        sent,
        BURST * 4,
        "every packet to every viewer, without waiting"
    );
}

/// Video at the load generator's rate (a packet every 3 ms): every packet reaches
/// every viewer in the drain after its datagram, and the receivers' `Rtc`s get no
/// timeout for it: str0m's own loop takes one per packet and receiver (two without
/// the gate's wait), here a timer of theirs (RTCP) due within the millisecond is all
/// that runs with the packets.
fn packets_leave_without_a_turn(mut h: Harness) {
    const PACKETS: u64 = 30;
    let mut timeouts = 0;
    for i in 0..PACKETS {
        h.pump(3);
        let (src, buf) = h.publish(false);
        let (now, server) = (h.now, h.server);
        let sfu = &mut h.sfus[0];
        let before = sfu.counters().rtc_timeouts;
        sfu.handle_datagram(now, src, server, &buf);
        let sent = in_memory::drain(sfu, &mut Vec::new());
        assert_eq!(sent, 3, "packet {i}: sent to the 3 viewers at once");
        timeouts += sfu.counters().rtc_timeouts - before;
        let next = sfu.poll_timeout();
        assert!(
            next.is_none_or(|t| t > now),
            "packet {i}: a turn due at once after it"
        );
    }
    assert!(
        timeouts <= PACKETS * 3 / 10,
        "{timeouts} timeouts given to receivers while forwarding {PACKETS} packets to 3"
    );
}

#[test]
fn forwarded_packets_leave_without_a_timer_turn() {
    packets_leave_without_a_turn(Harness::new(3));
}

#[test]
fn forwarded_packets_leave_without_a_timer_turn_when_nobody_estimates() {
    packets_leave_without_a_turn(Harness::without_estimation(3));
}

/// A packet for more receivers than one step of the fan-out: the first step's copies
/// are there to send before the other receivers' are made, and the rest follow as they
/// are taken, so the first receivers' copies leave while the last ones' are made.
#[test]
fn a_fan_out_hands_out_its_first_copies_before_it_makes_the_rest() {
    const RECEIVERS: usize = 40;
    let mut h = Harness::new(RECEIVERS);
    for _ in 0..3 {
        let (src, buf) = h.publish(false);
        let (now, server) = (h.now, h.server);
        let sfu = &mut h.sfus[0];
        let before = sfu.counters().forwarded;
        sfu.handle_datagram(now, src, server, &buf);
        let first = sfu.counters().forwarded - before;
        assert!(
            first > 0 && first < RECEIVERS as u64,
            "{first} of {RECEIVERS} copies made before any was taken"
        );
        let sent = in_memory::drain(sfu, &mut Vec::new());
        assert_eq!(sent, RECEIVERS, "every receiver's copy, once taken");
        assert_eq!(sfu.counters().forwarded - before, RECEIVERS as u64);
    }
}
