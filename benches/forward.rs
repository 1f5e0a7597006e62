//! Micro-benchmarks of the forwarding hot path: what the engine does for every
//! datagram (classify it, pull the ufrag out of STUN) and for every forwarded packet
//! (keyframe detection, sequence/timestamp rewriting). Run with `cargo bench`.
//!
//! A whole `Sfu` forwarding step (datagram in, SRTP decrypt, rewrite, SRTP encrypt for
//! each receiver) needs two peers that finished ICE and DTLS with it; that is measured
//! end to end by the load generator (`lanrelay-load`), which reports server CPU time
//! per forwarded packet, rather than here.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lanrelay::sfu::codec::starts_keyframe;
use lanrelay::sfu::demux::{classify, stun_local_ufrag};
use lanrelay::sfu::forward::Rewriter;
use str0m::format::Codec;

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

criterion_group!(benches, demux, codec, rewrite);
criterion_main!(benches);
