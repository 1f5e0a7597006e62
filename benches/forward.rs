//! Micro-benchmarks of the forwarding hot path: what the engine does for every
//! datagram (classify it, pull the ufrag out of STUN) and for every forwarded packet
//! (keyframe detection, sequence/timestamp rewriting). Run with `cargo bench`.
//!
//! `sfu_step` measures a whole forwarding step of the Sans-IO engine: one SRTP datagram
//! from a publisher goes into [`Shard::handle_datagram`] (routing, SRTP decrypt, str0m's
//! receive path, keyframe check, rewriting, `write_rtp` and SRTP encrypt for each
//! receiver) and every resulting datagram is taken out with [`Shard::poll_output`]. The
//! publisher and receivers are str0m `Rtc`s wired to the engine in memory (ICE, DTLS and
//! renegotiation done for real, without sockets), so this is the engine's CPU cost per
//! forwarded packet without the system calls, which `lanrelay-load` adds back.
//! `audio_step` does the same for audio packets carrying their audio level, at the
//! rate browsers send them.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lanrelay::sfu::codec::starts_keyframe;
use lanrelay::sfu::demux::{classify, stun_local_ufrag};
use lanrelay::sfu::link::LinkMsg;
use lanrelay::sfu::rewrite::Rewriter;
use lanrelay::sfu::speaker::{Detector, LevelMeter, TICK};
use str0m::format::Codec;

#[path = "../tests/common/in_memory.rs"]
mod in_memory;
use in_memory::{home_step, mirror_step, Harness};

/// A STUN binding request as a browser sends it: USERNAME, then the usual attributes.
fn stun_request() -> Vec<u8> {
    let mut attrs = Vec::new();
    let mut attr = |typ: u16, value: &[u8]| {
        attrs.extend_from_slice(&typ.to_be_bytes());
        attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        attrs.extend_from_slice(value);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    };
    attr(0x0006, b"srvUfrag0123456789:brwsr");
    attr(0xC057, &[0, 1, 0, 10]); // GOOG-NETWORK-INFO
    attr(0x802A, &[7; 8]); // ICE-CONTROLLING
    attr(0x0025, &[]); // USE-CANDIDATE
    attr(0x0024, &[0x6e, 0x7f, 0x1e, 0xff]); // PRIORITY
    attr(0x0008, &[9; 20]); // MESSAGE-INTEGRITY
    attr(0x8028, &[1, 2, 3, 4]); // FINGERPRINT
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attrs);
    m
}

fn demux(c: &mut Criterion) {
    let stun = stun_request();
    let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    let mut g = c.benchmark_group("demux");
    g.throughput(Throughput::Elements(1));
    g.bench_function("classify_rtp", |b| b.iter(|| classify(black_box(&rtp))));
    g.bench_function("stun_local_ufrag", |b| {
        b.iter(|| stun_local_ufrag(black_box(&stun)))
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    // Extended VP8 descriptor (15-bit picture id), then a key frame header.
    let mut vp8_key = vec![0x90, 0x80, 0x81, 0x23, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a];
    vp8_key.resize(1100, 0xAB);
    let mut vp8_delta = vp8_key.clone();
    vp8_delta[0] = 0x80; // not the start of a frame
    let mut h264_stap = vec![
        0x78, 0x00, 0x04, 0x67, 0x42, 0x00, 0x1f, 0x00, 0x02, 0x68, 0xce,
    ];
    h264_stap.extend_from_slice(&[0x00, 0x03, 0x65, 0x88, 0x84]);
    let mut g = c.benchmark_group("starts_keyframe");
    g.throughput(Throughput::Elements(1));
    g.bench_function("vp8_keyframe", |b| {
        b.iter(|| starts_keyframe(Codec::Vp8, black_box(&vp8_key)))
    });
    g.bench_function("vp8_continuation", |b| {
        b.iter(|| starts_keyframe(Codec::Vp8, black_box(&vp8_delta)))
    });
    g.bench_function("h264_stap_a", |b| {
        b.iter(|| starts_keyframe(Codec::H264, black_box(&h264_stap)))
    });
    g.finish();
}

fn rewrite(c: &mut Criterion) {
    let t0 = Instant::now();
    let mut g = c.benchmark_group("rewriter");
    g.throughput(Throughput::Elements(1));
    g.bench_function("same_source", |b| {
        let mut r = Rewriter::new(1000);
        let mut seq = 70_000u64;
        let mut ts = 0u32;
        b.iter(|| {
            seq += 1;
            ts = ts.wrapping_add(3000);
            black_box(r.rewrite(0, black_box(seq), black_box(ts), t0, 90_000))
        })
    });
    g.bench_function("source_switch_every_packet", |b| {
        let mut r = Rewriter::new(1000);
        let mut seq = 70_000u64;
        let mut generation = 0u32;
        let mut now = t0;
        b.iter(|| {
            seq += 1;
            generation += 1;
            now += Duration::from_micros(10);
            black_box(r.rewrite(generation, black_box(seq), 1234, now, 90_000))
        })
    });
    g.finish();
}

/// The load generator's rate: 2.5 Mbit/s of ~1,100-byte packets, one every 3.3 ms, so
/// the engine's timers (RTCP, the pacer, bandwidth estimation) run at their real rate
/// and are counted (packets fed all at one instant would also pile up in str0m's
/// pacer). Chunks of [`CHUNK`] packets are measured; between them the receivers' side
/// runs unmeasured (their feedback, ICE), as in `audio_step`.
const GAP: Duration = Duration::from_micros(3_300);
const CHUNK: u64 = 30;

/// `n` packets of `h`'s publisher, each with the time it is fed at (`GAP` apart).
fn paced(h: &mut Harness, n: u64) -> Vec<(Instant, (std::net::SocketAddr, Vec<u8>))> {
    (0..n)
        .map(|_| {
            let p = h.publish(false);
            h.now += GAP;
            (h.now, p)
        })
        .collect()
}

/// Runs `iters` measured steps in chunks of at most `chunk`: `steps(h, n)` runs `n`
/// steps and returns the time they took and the datagrams they sent, which must be
/// `per_step` for each (every packet left within its step); after each chunk `pump(h)`
/// runs the receivers' side unmeasured. Returns the time measured.
fn in_chunks<H>(
    h: &mut H,
    iters: u64,
    chunk: u64,
    per_step: usize,
    mut steps: impl FnMut(&mut H, u64) -> (Duration, usize),
    mut pump: impl FnMut(&mut H),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        left -= n;
        let (took, sent) = steps(h, n);
        elapsed += took;
        assert_all_sent(sent, n as usize * per_step);
        pump(h);
    }
    elapsed
}

fn sfu_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("sfu_step");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for receivers in [1usize, 10, 50] {
        g.throughput(Throughput::Elements(receivers as u64));
        g.bench_with_input(
            BenchmarkId::new("video_packet_to_receivers", receivers),
            &receivers,
            |b, &n| {
                let mut h = Harness::new(n);
                let first = h.publish(false);
                assert_eq!(h.feed(&first), n, "forwarded to everyone");
                b.iter_custom(|iters| {
                    let steps = |h: &mut Harness, chunk| {
                        let (mut took, mut sent) = (Duration::ZERO, 0);
                        for _ in 0..chunk {
                            let p = h.publish(false);
                            h.now += GAP;
                            let start = Instant::now();
                            sent += black_box(h.feed(&p));
                            took += start.elapsed();
                        }
                        (took, sent)
                    };
                    in_chunks(&mut h, iters, CHUNK, n, steps, |h| h.pump(5))
                })
            },
        );
    }
    g.finish();
}

/// The active speaker's own parts: what each audio packet costs (its level into the
/// track's meter), and one tick of a room's detector (ten participants' levels), which
/// runs every 100 ms while anyone is heard.
fn speaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("speaker");
    g.throughput(Throughput::Elements(1));
    let mut meter = LevelMeter::default();
    let mut i = 0u8;
    g.bench_function("level_meter_per_packet", |b| {
        b.iter(|| {
            i = i.wrapping_add(7);
            meter.on_level(black_box(-((i % 127) as i8)));
        })
    });
    let mut detector = Detector::default();
    let mut now = Instant::now();
    let mut n = 0u32;
    g.bench_function("detector_tick_10_participants", |b| {
        b.iter(|| {
            now += TICK;
            n = n.wrapping_add(1);
            let levels = (0..10u64).map(|p| (p, Some(((n as u64 * 13 + p * 29) % 128) as u8)));
            black_box(detector.tick(now, levels))
        })
    });
    black_box(meter.take());
    g.finish();
}

/// One audio packet from a publisher to its receivers, as browsers send them: 50 a
/// second (the fake clock moves 20 ms a packet, so the engine's timers, the active
/// speaker's among them, run at their real rate and are counted), each carrying its
/// audio level (RFC 6464), which the engine reads to tell who is speaking. Chunks of
/// half a second of audio are measured; between them the receivers' side of the
/// connections runs unmeasured, keeping ICE and RTCP alive.
fn audio_step(c: &mut Criterion) {
    const CHUNK: u64 = 25;
    let mut g = c.benchmark_group("audio_step");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(4));
    for receivers in [1usize, 10] {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new("audio_packet_to_receivers", receivers),
            &receivers,
            |b, &n| {
                let mut h = Harness::with_audio(n, 1);
                let first = h.publish_audio(Some(-30));
                assert_eq!(h.feed_audio(&first), n, "forwarded to everyone");
                let mut i = 0u64;
                b.iter_custom(|iters| {
                    let steps = |h: &mut Harness, chunk| {
                        let (mut took, mut sent) = (Duration::ZERO, 0);
                        for _ in 0..chunk {
                            // Speech with pauses: a level that varies.
                            i += 1;
                            let level = -((20 + (i * 7) % 107) as i8);
                            let p = h.publish_audio(Some(level));
                            let start = Instant::now();
                            sent += black_box(h.feed_audio(&p));
                            took += start.elapsed();
                        }
                        (took, sent)
                    };
                    in_chunks(&mut h, iters, CHUNK, n, steps, |h| h.pump(20))
                })
            },
        );
    }
    g.finish();
}

/// Two rooms (one publisher to 10 receivers each), each with its own engine as the
/// media workers run them: one thread serving both rooms in turn, against one thread
/// per room. The throughput line (forwarded packets per second) should double on two
/// cores; nothing is shared between the two engines.
fn two_rooms(c: &mut Criterion) {
    const RECEIVERS: usize = 10;
    let mut g = c.benchmark_group("two_rooms");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(2 * RECEIVERS as u64));
    for threads in [1usize, 2] {
        g.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
            let mut rooms = vec![Harness::new(RECEIVERS), Harness::new(RECEIVERS)];
            for h in &mut rooms {
                let first = h.publish(false);
                assert_eq!(h.feed(&first), RECEIVERS, "forwarded to everyone");
            }
            b.iter_custom(|iters| {
                let steps = |rooms: &mut Vec<Harness>, chunk| {
                    let packets: Vec<Vec<_>> = rooms.iter_mut().map(|h| paced(h, chunk)).collect();
                    let start = Instant::now();
                    let sent: usize = if t == 1 {
                        let mut sent = 0;
                        for (h, ps) in rooms.iter_mut().zip(&packets) {
                            for (at, p) in ps {
                                h.now = *at;
                                sent += black_box(h.feed(p));
                            }
                        }
                        sent
                    } else {
                        std::thread::scope(|s| {
                            let rooms: Vec<_> = rooms
                                .iter_mut()
                                .zip(&packets)
                                .map(|(h, ps)| {
                                    s.spawn(move || {
                                        ps.iter()
                                            .map(|(at, p)| {
                                                h.now = *at;
                                                black_box(h.feed(p))
                                            })
                                            .sum()
                                    })
                                })
                                .collect();
                            rooms.into_iter().map(|r| r.join().unwrap_or(0)).sum()
                        })
                    };
                    (start.elapsed(), sent)
                };
                // Longer chunks than `sfu_step`'s: a thread start per chunk.
                let pump = |rooms: &mut Vec<Harness>| rooms.iter_mut().for_each(|h| h.pump(5));
                in_chunks(&mut rooms, iters, 4 * CHUNK, 2 * RECEIVERS, steps, pump)
            })
        });
    }
    g.finish();
}

/// One room (one publisher to 20 receivers) served by one engine, against the same
/// room spread over two engines (the home with 10 receivers, a mirror with the other
/// 10), run on one thread in turn and on two threads at once, the home passing each
/// packet to the mirror over a channel as media workers do. The throughput line is
/// forwarded packets per second: a spread room's fan-out should scale with cores.
fn one_room(c: &mut Criterion) {
    const RECEIVERS: usize = 20;
    let mut g = c.benchmark_group("one_room");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(RECEIVERS as u64));
    for (label, workers, threads) in [
        ("one_worker", 1, 1),
        ("two_workers_one_thread", 2, 1),
        ("two_workers_two_threads", 2, 2),
    ] {
        g.bench_function(label, |b| {
            let mut h = Harness::spread(RECEIVERS, workers);
            let first = h.publish(false);
            assert_eq!(h.feed(&first), RECEIVERS, "forwarded to everyone");
            b.iter_custom(|iters| {
                let steps = |h: &mut Harness, chunk| {
                    let packets = paced(h, chunk);
                    let start = Instant::now();
                    let sent: usize = if threads == 1 {
                        packets
                            .iter()
                            .map(|(at, p)| {
                                h.now = *at;
                                black_box(h.feed(p))
                            })
                            .sum()
                    } else {
                        let server = h.server;
                        let (home, mirror) = h.sfus.split_at_mut(1);
                        let (home, mirror) = (&mut home[0], &mut mirror[0]);
                        let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<LinkMsg>)>();
                        std::thread::scope(|s| {
                            let packets = &packets;
                            let home = s.spawn(move || {
                                let mut sent = 0;
                                for (at, (src, buf)) in packets {
                                    let mut links = Vec::new();
                                    sent += black_box(home_step(
                                        home, *at, *src, server, buf, &mut links,
                                    ));
                                    let _ = tx.send((*at, links));
                                }
                                sent
                            });
                            let mirror = s.spawn(move || {
                                rx.iter()
                                    .map(|(at, links)| black_box(mirror_step(mirror, at, links)))
                                    .sum::<usize>()
                            });
                            home.join().unwrap_or(0) + mirror.join().unwrap_or(0)
                        })
                    };
                    (start.elapsed(), sent)
                };
                in_chunks(&mut h, iters, 4 * CHUNK, RECEIVERS, steps, |h| h.pump(5))
            })
        });
    }
    g.finish();
}

/// Every packet left for every receiver within the measured steps: a step that only
/// queued packets (str0m's pacer holding them for later) would look cheaper than it is.
fn assert_all_sent(sent: usize, expected: usize) {
    assert_eq!(sent, expected, "datagrams sent within the measured steps");
}

criterion_group!(
    benches, demux, codec, rewrite, speaker, sfu_step, audio_step, two_rooms, one_room
);
criterion_main!(benches);
