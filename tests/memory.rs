//! A call that loses nothing keeps the server's memory flat: once its caches have
//! filled (the retransmission cache holds half a second of video), nothing a stream
//! keeps may grow with the length of the call. A per-packet history that is only
//! trimmed when something is lost (as str0m's record of the share of resends was)
//! grows for hours in a clean LAN call.
//!
//! The engine and real str0m peers in memory on a fake clock (`common/in_memory.rs`),
//! so a minute of video runs in seconds; the heap's live bytes are counted by the
//! test's global allocator.

#[path = "common/in_memory.rs"]
mod in_memory;

use std::alloc::System;

use cap::Cap;
use in_memory::Harness;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// One video packet every 4 ms (250 a second, about 2.2 Mbit/s of 1,100-byte
/// packets), forwarded to each viewer and delivered, with every timer of the peers
/// and the engine run on the way: RTCP reports, stats, feedback.
fn play(h: &mut Harness, seconds: u64) {
    for _ in 0..seconds * 250 {
        h.pump(4);
        let (src, buf) = h.publish(false);
        let (now, server) = (h.now, h.server);
        h.sfus[0].handle_datagram(now, src, server, &buf);
        h.exchange();
    }
}

#[test]
fn a_long_call_without_loss_keeps_the_servers_memory_flat() {
    const VIEWERS: usize = 2;
    let mut h = Harness::new(VIEWERS);
    let (src, buf) = h.publish(true);
    let (now, server) = (h.now, h.server);
    h.sfus[0].handle_datagram(now, src, server, &buf);
    h.exchange();
    play(&mut h, 10);
    let before = HEAP.allocated();
    let forwarded = |h: &Harness| h.sfus[0].counters().forwarded;
    let forwarded_before = forwarded(&h);
    play(&mut h, 50);
    let after = HEAP.allocated();
    assert!(
        forwarded(&h) - forwarded_before >= 50 * 250 * VIEWERS as u64,
        "every packet forwarded to every viewer: {}",
        forwarded(&h) - forwarded_before
    );
    // The peers live in this process too; a history kept per packet or per 10 ms
    // would grow by 100-300 entries (2.4-7 KB) a second per stream: over 100 KB here.
    let growth = after.saturating_sub(before);
    eprintln!("heap: {before} -> {after} bytes over 50 s");
    assert!(
        growth < 16 * 1024,
        "the heap grew by {growth} bytes over 50 s of a clean call ({before} -> {after})"
    );
}
