//! Forwarded video goes out as it arrives: the server does not pace it to a receiver's
//! bandwidth estimate. A publisher's browser paces its own encoder; a relay that paced
//! again could only add delay (a keyframe burst spread over a hundred milliseconds, or
//! queued for seconds behind a low estimate), since it cannot slow the encoder for one
//! receiver. The estimate picks simulcast layers instead.
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
