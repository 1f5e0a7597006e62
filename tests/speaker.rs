//! Who is speaking, end to end through the engine: a str0m publisher sends audio
//! packets carrying their audio level (RFC 6464) as browsers do, to receivers in the
//! same room, some served by the room's home worker and some by another worker (as
//! spread viewers are). Silence (a muted microphone) marks nobody; speech marks the
//! publisher on every receiver, its own connection included, within a few ticks; when
//! it stops, everyone hears that nobody speaks. Fake clock, in memory.
#![allow(clippy::disallowed_methods)] // tests read the clock

#[path = "common/in_memory.rs"]
mod in_memory;

use std::time::{Duration, Instant};

use in_memory::Harness;

/// The publisher sends `ms` of audio at `level` dBov (50 packets a second); the
/// engine and the receivers run meanwhile.
fn talk(h: &mut Harness, level: i8, ms: u64) {
    for _ in 0..ms / 20 {
        let (src, buf) = h.publish_audio(Some(level));
        let (now, server) = (h.now, h.server);
        h.sfus[0].handle_datagram(now, src, server, &buf);
        h.pump(1);
    }
}

/// Who was told what since `since`, in order: (receiver, speaker).
fn told_since(h: &Harness, since: Instant) -> Vec<(u64, Option<u64>)> {
    h.speakers
        .iter()
        .filter(|(t, _, _)| *t >= since)
        .map(|(_, to, who)| (*to, *who))
        .collect()
}

#[test]
fn the_speaker_is_told_to_everyone_on_both_workers() {
    // Publisher 1 and receivers 2 and 4 on the room's home worker; receivers 3 and 5
    // are viewers served by the other worker.
    let mut h = Harness::with_audio(4, 2);
    let everyone = [1u64, 2, 3, 4, 5];

    // A muted microphone: level 127, for two seconds. Nobody speaks.
    talk(&mut h, -127, 2000);
    assert!(
        h.speakers.is_empty(),
        "silence marks nobody: {:?}",
        h.speakers
    );

    // Speech at -30 dBov: everyone hears that 1 speaks, once, within a tick or two.
    let start = h.now;
    talk(&mut h, -30, 3000);
    let told = told_since(&h, start);
    let mut to: Vec<u64> = told.iter().map(|(to, _)| *to).collect();
    to.sort_unstable();
    assert_eq!(to, everyone, "each told once: {told:?}");
    assert!(told.iter().all(|(_, who)| *who == Some(1)), "{told:?}");
    let last = h.speakers.iter().map(|(t, _, _)| *t).max().unwrap();
    let after = last.duration_since(start);
    println!(
        "speaker told to everyone {} ms after speech began",
        after.as_millis()
    );
    assert!(after <= Duration::from_millis(300), "told after {after:?}");

    // Silence again: within about a second and a half, nobody speaks, told to all.
    let quiet = h.now;
    talk(&mut h, -127, 3000);
    let told = told_since(&h, quiet);
    let mut to: Vec<u64> = told.iter().map(|(to, _)| *to).collect();
    to.sort_unstable();
    assert_eq!(to, everyone, "each told once: {told:?}");
    assert!(told.iter().all(|(_, who)| who.is_none()), "{told:?}");
    let last = h.speakers.iter().map(|(t, _, _)| *t).max().unwrap();
    let after = last.duration_since(quiet);
    println!(
        "nobody speaking told {} ms after speech stopped",
        after.as_millis()
    );
    assert!(after <= Duration::from_millis(1600), "told after {after:?}");
}
