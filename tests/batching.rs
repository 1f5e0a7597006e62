//! The datagrams of one read go in together (`Shard::start_batch` .. `end_batch`, as
//! the media worker hands them over), and a publisher's packets among them go out in
//! one fan-out per track: every packet to one receiver, then every packet to the
//! next, so each receiver's state is walked once for the lot. What the viewers see
//! must not change: every packet, in order, intact.
//!
//! Real str0m peers wired to the engine in memory on a fake clock.

#[path = "common/in_memory.rs"]
mod in_memory;

use in_memory::{home_step, Harness};
use lanrelay::sfu::shard::Output;

/// The engine's outputs until it has none: the video datagrams (over 1,000 bytes),
/// in the order it sent them.
fn video_out(h: &mut Harness) -> Vec<str0m::net::Transmit> {
    video_out_of(h, 0)
}

/// [`video_out`] of engine `w`.
fn video_out_of(h: &mut Harness, w: usize) -> Vec<str0m::net::Transmit> {
    let mut out = Vec::new();
    while let Some(o) = h.sfus[w].poll_output() {
        if let Output::Transmit(t) = o {
            if t.contents.len() > 1000 {
                out.push(t);
            }
        }
    }
    out
}

#[test]
fn a_read_of_packets_reaches_each_viewer_together_and_in_order() {
    // 4 packets to 8 viewers: one step of the fan-out (about 32 copies).
    read_reaches_each_viewer_together(8, 4);
}

#[test]
fn a_long_read_is_fanned_out_in_steps_and_still_in_order() {
    // 20 packets to 10 viewers: one viewer a step.
    read_reaches_each_viewer_together(10, 20);
}

fn read_reaches_each_viewer_together(viewers: usize, packets: usize) {
    let mut h = Harness::new(viewers);
    let read: Vec<_> = (0..packets).map(|_| h.publish(false)).collect();
    let (now, server) = (h.now, h.server);
    h.sfus[0].start_batch();
    for (src, buf) in &read {
        h.sfus[0].handle_datagram(now, *src, server, buf);
    }
    assert!(
        video_out(&mut h).is_empty(),
        "nothing is forwarded before the read ends"
    );
    h.sfus[0].end_batch();
    let sent = video_out(&mut h);
    assert_eq!(
        sent.len(),
        viewers * packets,
        "every packet to every viewer"
    );

    // One viewer's packets, then the next one's.
    let order: Vec<_> = sent.iter().map(|t| t.destination).collect();
    for (i, chunk) in order.chunks(packets).enumerate() {
        assert!(
            chunk.iter().all(|d| *d == chunk[0]),
            "viewer {i} gets the read's packets one after the other: {order:?}"
        );
    }

    // Each viewer decodes all of them, in the publisher's order, intact.
    let mut got = vec![Vec::new(); viewers + 1];
    for t in &sent {
        let (client, stamps) = h.deliver(t).expect("sent to a viewer");
        got[client].extend(stamps);
    }
    // The publisher's stamps number its packets; the read's are the last ones.
    let last = h.seq as u32;
    let want: Vec<u32> = (last + 1 - packets as u32..=last).collect();
    // Client 0 is the publisher.
    for (client, stamps) in got.iter().enumerate().skip(1) {
        let numbers: Vec<u32> = stamps
            .iter()
            .map(|s| s.as_ref().expect("the payload arrives intact").number)
            .collect();
        assert_eq!(numbers, want, "viewer {client}: every packet, in order");
    }
}

#[test]
fn packets_outside_a_read_still_go_out_as_they_come() {
    let mut h = Harness::new(8);
    let p = h.publish(false);
    let (now, server) = (h.now, h.server);
    h.sfus[0].handle_datagram(now, p.0, server, &p.1);
    assert_eq!(video_out(&mut h).len(), 8, "forwarded without a read");
    // A read of one packet forwards it at its end, as before.
    let p = h.publish(false);
    h.sfus[0].start_batch();
    h.sfus[0].handle_datagram(h.now, p.0, server, &p.1);
    h.sfus[0].end_batch();
    assert_eq!(video_out(&mut h).len(), 8);
}

#[test]
fn a_track_with_few_viewers_is_not_held() {
    let mut h = Harness::new(3);
    let read: Vec<_> = (0..3).map(|_| h.publish(false)).collect();
    let (now, server) = (h.now, h.server);
    h.sfus[0].start_batch();
    let mut as_they_came = 0;
    for (src, buf) in &read {
        h.sfus[0].handle_datagram(now, *src, server, buf);
        as_they_came += video_out(&mut h).len();
    }
    h.sfus[0].end_batch();
    assert_eq!(as_they_came, 9, "each packet forwarded as it came");
    assert!(video_out(&mut h).is_empty());
}

/// A room spread over two workers: the mirror gets the publisher's packets as link
/// messages, a batch at a time, and holds them as the home holds a read.
#[test]
fn a_batch_of_link_messages_reaches_each_viewer_together() {
    const PACKETS: usize = 4;
    // 20 viewers, 10 on each worker.
    let mut h = Harness::spread(20, 2);
    let (now, server) = (h.now, h.server);
    let mut links = Vec::new();
    for _ in 0..PACKETS {
        let (src, buf) = h.publish(false);
        home_step(&mut h.sfus[0], now, src, server, &buf, &mut links);
    }
    assert_eq!(links.len(), PACKETS, "one link message per packet");
    h.sfus[1].start_batch();
    for msg in links {
        h.sfus[1].handle_link(now, msg);
    }
    h.sfus[1].end_batch();
    let sent = video_out_of(&mut h, 1);
    assert_eq!(
        sent.len(),
        10 * PACKETS,
        "every packet to the mirror's viewers"
    );
    let order: Vec<_> = sent.iter().map(|t| t.destination).collect();
    for chunk in order.chunks(PACKETS) {
        assert!(
            chunk.iter().all(|d| *d == chunk[0]),
            "each viewer gets the batch's packets one after the other: {order:?}"
        );
    }
    for t in &sent {
        let (_, stamps) = h.deliver(t).expect("sent to a viewer");
        assert!(stamps.iter().all(Option::is_some), "intact");
    }
}
