//! Micro-benchmarks of the forwarding hot path: what the engine does for every
//! datagram (classify it, pull the ufrag out of STUN) and for every forwarded packet
//! (keyframe detection, sequence/timestamp rewriting). Run with `cargo bench`.
//!
//! `sfu_step` measures a whole forwarding step of the Sans-IO engine: one SRTP datagram
//! from a publisher goes into [`Sfu::handle_datagram`] (routing, SRTP decrypt, str0m's
//! receive path, keyframe check, rewriting, `write_rtp` and SRTP encrypt for each
//! receiver) and every resulting datagram is taken out with [`Sfu::poll_output`]. The
//! publisher and receivers are str0m `Rtc`s wired to the engine in memory (ICE, DTLS and
//! renegotiation done for real, without sockets), so this is the engine's CPU cost per
//! forwarded packet without the system calls, which `lanrelay-load` adds back.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lanrelay::load::payload::{self, Stamp, Vp8Packet};
use lanrelay::sfu::codec::starts_keyframe;
use lanrelay::sfu::core::{Output as SfuOutput, Sfu, SfuConfig};
use lanrelay::sfu::demux::{classify, stun_local_ufrag};
use lanrelay::sfu::forward::Rewriter;
use lanrelay::sfu::link::LinkMsg;
use lanrelay::signaling::protocol::{ClientMsg, Mode, PeerId, Role, ServerMsg};
use std::net::SocketAddr;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

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

/// A str0m participant wired to the engine in memory.
struct Client {
    id: PeerId,
    addr: SocketAddr,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    video: Option<Mid>,
    connected: bool,
    /// The engine (media worker) that serves it.
    owner: usize,
}

/// One publisher and `receivers` viewers in one room of an in-memory engine, or of
/// two engines as two media workers run a spread room: the room's home (engine 0,
/// the publisher and half the viewers) and a mirror (engine 1, the other half), with
/// their link messages passed in memory.
struct Harness {
    sfus: Vec<Sfu>,
    server: SocketAddr,
    clients: Vec<Client>,
    now: Instant,
    seq: u64,
    picture_id: u16,
}

impl Harness {
    fn new(receivers: usize) -> Harness {
        Self::spread(receivers, 1)
    }

    /// `workers`: 1, or 2 for a room spread over two engines.
    fn spread(receivers: usize, workers: usize) -> Harness {
        let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let now = Instant::now();
        let mut h = Harness {
            sfus: (0..workers)
                .map(|worker| {
                    Sfu::new(SfuConfig {
                        candidates: vec![server],
                        room_capacity: receivers + 1,
                        viewer_capacity: 0,
                        room_tokens: Default::default(),
                        worker,
                    })
                })
                .collect(),
            server,
            clients: Vec::new(),
            now,
            seq: 1000,
            picture_id: 0,
        };
        for i in 0..=receivers {
            let id = i as PeerId + 1;
            let addr: SocketAddr = format!("10.0.1.{}:{}", 1 + i / 200, 6000 + i)
                .parse()
                .unwrap();
            let mut rtc = Rtc::builder()
                .set_rtp_mode(true)
                .clear_codecs()
                .enable_opus(true, false)
                .enable_vp8(true)
                .build(h.now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            let mut api = rtc.sdp_api();
            let dir = if i == 0 {
                Direction::SendOnly
            } else {
                Direction::RecvOnly
            };
            let video = api.add_media(MediaKind::Video, dir, None, None, None);
            let (offer, pending) = api.apply().unwrap();
            let owner = if workers == 2 && i % 2 == 0 && i > 0 {
                1
            } else {
                0
            };
            let name = format!("p{i}");
            if owner == 0 {
                h.sfus[0].join(id, "bench", &name, Role::Participant, Mode::Relay, None);
            } else {
                h.sfus[1].join_mirrored(0, id, "bench", &name, Mode::Relay, None);
                // The home admits it.
                h.exchange();
            }
            h.sfus[owner].handle_signal(
                h.now,
                id,
                ClientMsg::Offer {
                    sdp: offer.to_sdp_string(),
                },
            );
            h.clients.push(Client {
                id,
                addr,
                rtc,
                pending: Some(pending),
                video: (i == 0).then_some(video),
                connected: false,
                owner,
            });
            h.pump(5);
        }
        // ICE, DTLS and the server's offers to the viewers.
        for _ in 0..3000 {
            h.pump(1);
            if h.clients.iter().all(|c| c.connected) {
                break;
            }
        }
        assert!(h.clients.iter().all(|c| c.connected), "everyone connects");
        h.pump(50);
        // A keyframe opens the video to every viewer.
        let key = h.publish(true);
        h.feed(&key);
        h.pump(5);
        h
    }

    /// Lets `ms` milliseconds of fake time pass, delivering everything in memory.
    fn pump(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            for c in &mut self.clients {
                let _ = c.rtc.handle_input(Input::Timeout(self.now));
            }
            for sfu in &mut self.sfus {
                sfu.handle_timeout(self.now);
            }
            self.exchange();
        }
    }

    /// Moves datagrams and signaling between the clients and the engine until quiet.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Ok(out) = self.clients[i].rtc.poll_output() {
                    match out {
                        Output::Timeout(_) => break,
                        Output::Transmit(t) => {
                            moved = true;
                            let (src, dst) = (t.source, t.destination);
                            let owner = self.clients[i].owner;
                            self.sfus[owner].handle_datagram(self.now, src, dst, &t.contents);
                        }
                        Output::Event(Event::Connected) => self.clients[i].connected = true,
                        Output::Event(_) => {}
                    }
                }
            }
            for w in 0..self.sfus.len() {
                while let Some(out) = self.sfus[w].poll_output() {
                    moved = true;
                    match out {
                        SfuOutput::Transmit(t) => {
                            let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.destination)
                            else {
                                continue;
                            };
                            let r =
                                Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                                    .unwrap();
                            let _ = c.rtc.handle_input(Input::Receive(self.now, r));
                        }
                        SfuOutput::Signal(id, msg) => self.signal(id, msg),
                        SfuOutput::Link(to, msg) => self.sfus[to].handle_link(self.now, msg),
                        SfuOutput::Close(_) | SfuOutput::HttpAnswer(..) => {}
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn signal(&mut self, id: PeerId, msg: ServerMsg) {
        let now = self.now;
        let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let owner = c.owner;
        match msg {
            ServerMsg::Answer { sdp } => {
                let answer = SdpAnswer::from_sdp_string(&sdp).unwrap();
                let pending = c.pending.take().unwrap();
                c.rtc.sdp_api().accept_answer(pending, answer).unwrap();
            }
            ServerMsg::Offer { sdp } => {
                let offer = SdpOffer::from_sdp_string(&sdp).unwrap();
                let answer = c.rtc.sdp_api().accept_offer(offer).unwrap();
                self.sfus[owner].handle_signal(
                    now,
                    id,
                    ClientMsg::Answer {
                        sdp: answer.to_sdp_string(),
                    },
                );
            }
            _ => {}
        }
    }

    /// The publisher's next video packet as the SRTP datagram it sends.
    fn publish(&mut self, keyframe: bool) -> (SocketAddr, Vec<u8>) {
        self.now += Duration::from_micros(10);
        self.seq += 1;
        self.picture_id = self.picture_id.wrapping_add(1) & 0x7fff;
        let data = payload::vp8(
            Vp8Packet {
                picture_id: self.picture_id,
                first: true,
                keyframe,
                width: 1280,
                height: 720,
            },
            1100,
            Stamp {
                stream: 1,
                number: self.seq as u32,
                sent_ns: 0,
            },
        );
        let p = &mut self.clients[0];
        let mid = p.video.unwrap();
        let pt = p
            .rtc
            .codec_config()
            .find(|c| c.spec().codec == Codec::Vp8)
            .unwrap()
            .pt();
        let ts = (self.seq * 3000) as u32;
        p.rtc
            .direct_api()
            .stream_tx_by_mid(mid, None)
            .unwrap()
            .write_rtp(RtpWrite::new(pt, self.seq.into(), ts, self.now, data).marker(true));
        let _ = p.rtc.handle_input(Input::Timeout(self.now));
        loop {
            match p.rtc.poll_output().unwrap() {
                Output::Transmit(t) if t.contents.len() > 1000 => {
                    return (t.source, t.contents.to_vec());
                }
                Output::Timeout(_) => {
                    let _ = p.rtc.handle_input(Input::Timeout(self.now));
                }
                _ => {}
            }
        }
    }

    /// One forwarding step as the engine's loop runs it: the datagram in, then the
    /// timeout str0m asks for to release what was written (it is already due), and
    /// every resulting datagram out.
    /// With two engines, the mirror then handles the packet the home passed it.
    fn feed(&mut self, (src, buf): &(SocketAddr, Vec<u8>)) -> usize {
        let now = self.now;
        let (home, mirror) = self.sfus.split_at_mut(1);
        let mut links = Vec::new();
        let mut sent = home_step(&mut home[0], now, *src, self.server, buf, &mut links);
        if let Some(mirror) = mirror.first_mut() {
            sent += mirror_step(mirror, now, links);
        }
        sent
    }
}

/// The home's share of a forwarding step; link messages for the mirror go to `links`.
/// Returns the video datagrams sent.
fn home_step(
    sfu: &mut Sfu,
    now: Instant,
    src: SocketAddr,
    server: SocketAddr,
    buf: &[u8],
    links: &mut Vec<LinkMsg>,
) -> usize {
    sfu.handle_datagram(now, src, server, buf);
    let mut sent = drain(sfu, links);
    if sfu.poll_timeout().is_some_and(|t| t <= now) {
        sfu.handle_timeout(now);
        sent += drain(sfu, links);
    }
    sent
}

/// The mirror's share: the messages the home passed it, and what it sends.
fn mirror_step(sfu: &mut Sfu, now: Instant, links: Vec<LinkMsg>) -> usize {
    for msg in links {
        sfu.handle_link(now, msg);
    }
    let mut none = Vec::new();
    let mut sent = drain(sfu, &mut none);
    if sfu.poll_timeout().is_some_and(|t| t <= now) {
        sfu.handle_timeout(now);
        sent += drain(sfu, &mut none);
    }
    sent
}

fn drain(sfu: &mut Sfu, links: &mut Vec<LinkMsg>) -> usize {
    let mut sent = 0;
    while let Some(out) = sfu.poll_output() {
        match out {
            SfuOutput::Transmit(t) => sent += usize::from(t.contents.len() > 1000),
            SfuOutput::Link(_, msg) => links.push(msg),
            _ => {}
        }
    }
    sent
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
                    let packets: Vec<_> = (0..iters).map(|_| h.publish(false)).collect();
                    let start = Instant::now();
                    for p in &packets {
                        black_box(h.feed(p));
                    }
                    let elapsed = start.elapsed();
                    // Keep ICE and RTCP alive between samples.
                    h.pump(20);
                    elapsed
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
                let packets: Vec<Vec<_>> = rooms
                    .iter_mut()
                    .map(|h| (0..iters).map(|_| h.publish(false)).collect())
                    .collect();
                let start = Instant::now();
                if t == 1 {
                    for (h, ps) in rooms.iter_mut().zip(&packets) {
                        for p in ps {
                            black_box(h.feed(p));
                        }
                    }
                } else {
                    std::thread::scope(|s| {
                        for (h, ps) in rooms.iter_mut().zip(&packets) {
                            s.spawn(move || {
                                for p in ps {
                                    black_box(h.feed(p));
                                }
                            });
                        }
                    });
                }
                let elapsed = start.elapsed();
                for h in &mut rooms {
                    h.pump(20);
                }
                elapsed
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
                let packets: Vec<_> = (0..iters).map(|_| h.publish(false)).collect();
                let start = Instant::now();
                if threads == 1 {
                    for p in &packets {
                        black_box(h.feed(p));
                    }
                } else {
                    let (now, server) = (h.now, h.server);
                    let (home, mirror) = h.sfus.split_at_mut(1);
                    let (home, mirror) = (&mut home[0], &mut mirror[0]);
                    let (tx, rx) = std::sync::mpsc::channel::<Vec<LinkMsg>>();
                    std::thread::scope(|s| {
                        let packets = &packets;
                        s.spawn(move || {
                            for (src, buf) in packets {
                                let mut links = Vec::new();
                                black_box(home_step(home, now, *src, server, buf, &mut links));
                                let _ = tx.send(links);
                            }
                        });
                        s.spawn(move || {
                            for links in rx {
                                black_box(mirror_step(mirror, now, links));
                            }
                        });
                    });
                }
                let elapsed = start.elapsed();
                h.pump(20);
                elapsed
            })
        });
    }
    g.finish();
}

criterion_group!(benches, demux, codec, rewrite, sfu_step, two_rooms, one_room);
criterion_main!(benches);
