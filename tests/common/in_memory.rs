//! One room of the Sans-IO engine with str0m participants wired to it in memory, on a
//! fake clock: ICE, DTLS and renegotiation run for real, without sockets or waiting.
//! Shared by the forwarding benchmarks (`benches/forward.rs`) and the engine tests
//! that need real peers and exact time (`tests/pacing.rs`).
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanrelay::sfu::link::LinkMsg;
use lanrelay::sfu::shard::{Output as SfuOutput, Shard as Sfu, ShardConfig as SfuConfig};
use lanrelay::signaling::protocol::{ClientMsg, Mode, PeerId, Role, ServerMsg};
use lanrelay_peer::payload::{self, Stamp, Vp8Packet};
use lanrelay_peer::{Peer, PeerConfig, PeerEvent, PeerOutput, RtpOut, Track};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};

/// The shared str0m participant (RTP mode) wired to the engine in memory.
pub struct Client {
    id: PeerId,
    addr: SocketAddr,
    peer: Peer,
    video: Option<Mid>,
    /// The publisher's audio track (see [`Harness::with_audio`]).
    audio: Option<Mid>,
    connected: bool,
    /// The engine (media worker) that serves it.
    owner: usize,
}

/// One publisher and `receivers` viewers in one room of an in-memory engine, or of
/// two engines as two media workers run a spread room: the room's home (engine 0,
/// the publisher and half the viewers) and a mirror (engine 1, the other half), with
/// their link messages passed in memory.
pub struct Harness {
    pub sfus: Vec<Sfu>,
    pub server: SocketAddr,
    pub clients: Vec<Client>,
    pub now: Instant,
    pub seq: u64,
    pub picture_id: u16,
    /// Every `speaker` message the engine sent: when, to whom, who speaks.
    pub speakers: Vec<(Instant, PeerId, Option<PeerId>)>,
}

impl Harness {
    pub fn new(receivers: usize) -> Harness {
        Self::spread(receivers, 1)
    }

    /// The publisher sends audio too ([`Harness::publish_audio`]); `workers` as in
    /// [`Harness::spread`].
    pub fn with_audio(receivers: usize, workers: usize) -> Harness {
        Self::build(receivers, workers, true, true)
    }

    /// `workers`: 1, or 2 for a room spread over two engines.
    pub fn spread(receivers: usize, workers: usize) -> Harness {
        Self::build(receivers, workers, false, true)
    }

    /// As [`Harness::new`], with the engine's `--no-bandwidth-estimation`.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub fn without_estimation(receivers: usize) -> Harness {
        Self::build(receivers, 1, false, false)
    }

    fn build(receivers: usize, workers: usize, audio: bool, estimation: bool) -> Harness {
        let server: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let now = Instant::now();
        let mut h = Harness {
            sfus: (0..workers)
                .map(|worker| {
                    Sfu::new(SfuConfig {
                        candidates: vec![server],
                        tcp_candidates: vec![],
                        room_capacity: receivers + 1,
                        viewer_capacity: 0,
                        room_tokens: Default::default(),
                        operator_token: None,
                        worker,
                        seed: worker as u64,
                        connect_timeout: std::time::Duration::from_secs(30),
                        direct_rate: 20,
                        chat: Default::default(),
                        record: None,
                        bandwidth_estimation: estimation,
                    })
                })
                .collect(),
            server,
            clients: Vec::new(),
            now,
            seq: 1000,
            picture_id: 0,
            speakers: Vec::new(),
        };
        for i in 0..=receivers {
            let id = i as PeerId + 1;
            let addr: SocketAddr = format!("10.0.1.{}:{}", 1 + i / 200, 6000 + i)
                .parse()
                .unwrap();
            let mut peer = Peer::new(
                PeerConfig {
                    local: addr,
                    rtp_mode: true,
                    twcc: true,
                    tcp: false,
                    video: Codec::Vp8,
                },
                h.now,
            )
            .unwrap();
            let dir = if i == 0 {
                Direction::SendOnly
            } else {
                Direction::RecvOnly
            };
            let mut tracks = vec![Track::new(MediaKind::Video, dir)];
            if audio && i == 0 {
                tracks.push(Track::new(MediaKind::Audio, dir));
            }
            let (offer, mids) = peer.offer(&tracks).unwrap();
            let owner = if workers == 2 && i % 2 == 0 && i > 0 {
                1
            } else {
                0
            };
            let name = format!("p{i}");
            if owner == 0 {
                h.sfus[0].join(
                    now,
                    id,
                    "bench",
                    &name,
                    Role::Participant,
                    Mode::Relay,
                    (None, None),
                );
            } else {
                h.sfus[1].join_mirrored(0, id, "bench", &name, Mode::Relay, (None, None));
                // The home admits it.
                h.exchange();
            }
            h.sfus[owner].handle_signal(h.now, id, ClientMsg::Offer { sdp: offer });
            h.clients.push(Client {
                id,
                addr,
                peer,
                video: mids.first().copied().filter(|_| i == 0),
                audio: mids.get(1).copied().filter(|_| i == 0),
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
    pub fn pump(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            for c in &mut self.clients {
                c.peer.timeout(self.now);
            }
            for sfu in &mut self.sfus {
                sfu.handle_timeout(self.now);
            }
            self.exchange();
        }
    }

    /// Moves datagrams and signaling between the clients and the engine until quiet.
    pub fn exchange(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Ok(out) = self.clients[i].peer.poll() {
                    match out {
                        PeerOutput::Timeout(_) => break,
                        PeerOutput::Transmit(t) => {
                            moved = true;
                            let (src, dst) = (t.source, t.destination);
                            let owner = self.clients[i].owner;
                            self.sfus[owner].handle_datagram(self.now, src, dst, &t.contents);
                        }
                        PeerOutput::Event(PeerEvent::Connected) => self.clients[i].connected = true,
                        PeerOutput::Event(_) => {}
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
                            c.peer
                                .receive(self.now, t.source, t.destination, &t.contents);
                        }
                        SfuOutput::Signal(id, msg) => self.signal(id, msg),
                        SfuOutput::Link(to, msg) => self.sfus[to].handle_link(self.now, msg),
                        SfuOutput::Close(_)
                        | SfuOutput::HttpAnswer(..)
                        | SfuOutput::Route(..)
                        | SfuOutput::BindLink(_) => {}
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
        if let ServerMsg::Speaker { id: speaker } = msg {
            self.speakers.push((now, id, speaker));
            return;
        }
        let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let owner = c.owner;
        match msg {
            ServerMsg::Answer { sdp } => c.peer.accept_answer(&sdp).unwrap(),
            ServerMsg::Offer { sdp, .. } => {
                let answer = c.peer.accept_offer(&sdp).unwrap();
                self.sfus[owner].handle_signal(now, id, ClientMsg::Answer { sdp: answer });
            }
            _ => {}
        }
    }

    /// Hands `t` to the client it is addressed to and returns which client that is
    /// and the stamps of the media packets it decoded from it.
    pub fn deliver(&mut self, t: &str0m::net::Transmit) -> Option<(usize, Vec<Option<Stamp>>)> {
        let i = self.clients.iter().position(|c| c.addr == t.destination)?;
        let c = &mut self.clients[i];
        c.peer
            .receive(self.now, t.source, t.destination, &t.contents);
        let mut stamps = Vec::new();
        while let Ok(out) = c.peer.poll() {
            match out {
                PeerOutput::Timeout(_) => break,
                PeerOutput::Event(PeerEvent::Packet(p)) => stamps.push(p.stamp),
                _ => {}
            }
        }
        Some((i, stamps))
    }

    /// The publisher's next video packet as the SRTP datagram it sends.
    pub fn publish(&mut self, keyframe: bool) -> (SocketAddr, Vec<u8>) {
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
        let written = p.peer.write_rtp(
            self.now,
            RtpOut {
                mid: p.video.unwrap(),
                rid: None,
                codec: Codec::Vp8,
                seq: self.seq,
                rtp_ts: (self.seq * 3000) as u32,
                marker: true,
                nackable: false,
                payload: data,
            },
        );
        assert!(written, "the publisher's video track is negotiated");
        p.peer.timeout(self.now);
        loop {
            match p.peer.poll().unwrap() {
                PeerOutput::Transmit(t) if t.contents.len() > 1000 => {
                    return (t.source, t.contents.to_vec());
                }
                PeerOutput::Timeout(_) => p.peer.timeout(self.now),
                _ => {}
            }
        }
    }

    /// The publisher's next audio packet, 20 ms after the last (the clock moves on),
    /// carrying `level` (RFC 6464, -dBov) as browsers do, as the SRTP datagram it sends.
    /// Its payload is [`AUDIO_PAYLOAD`] bytes.
    pub fn publish_audio(&mut self, level: Option<i8>) -> (SocketAddr, Vec<u8>) {
        self.now += Duration::from_millis(20);
        self.seq += 1;
        let p = &mut self.clients[0];
        let ext = str0m::rtp::ExtensionValues {
            audio_level: level,
            voice_activity: level.map(|l| l > -127),
            ..Default::default()
        };
        let out = RtpOut {
            mid: p.audio.expect("a harness with audio"),
            rid: None,
            codec: Codec::Opus,
            seq: self.seq,
            rtp_ts: (self.seq * 960) as u32,
            marker: false,
            nackable: false,
            payload: vec![0x5a; AUDIO_PAYLOAD],
        };
        assert!(p.peer.write_rtp_ext(self.now, out, ext), "audio negotiated");
        p.peer.timeout(self.now);
        loop {
            match p.peer.poll().unwrap() {
                PeerOutput::Transmit(t) if t.contents.len() > AUDIO_PAYLOAD => {
                    return (t.source, t.contents.to_vec());
                }
                PeerOutput::Timeout(_) => p.peer.timeout(self.now),
                _ => {}
            }
        }
    }

    /// One forwarding step of an audio packet (see [`Harness::feed`]); returns the
    /// audio datagrams sent.
    pub fn feed_audio(&mut self, (src, buf): &(SocketAddr, Vec<u8>)) -> usize {
        let (now, server) = (self.now, self.server);
        let sfu = &mut self.sfus[0];
        let mut links = Vec::new();
        sfu.handle_datagram(now, *src, server, buf);
        let mut sent = drain_larger(sfu, &mut links, AUDIO_PAYLOAD);
        if sfu.poll_timeout().is_some_and(|t| t <= now) {
            sfu.handle_timeout(now);
            sent += drain_larger(sfu, &mut links, AUDIO_PAYLOAD);
        }
        sent
    }

    /// One forwarding step as the engine's loop runs it: the datagram in, then the
    /// timeout str0m asks for to release what was written (it is already due), and
    /// every resulting datagram out.
    /// With two engines, the mirror then handles the packet the home passed it.
    pub fn feed(&mut self, (src, buf): &(SocketAddr, Vec<u8>)) -> usize {
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
pub fn home_step(
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
pub fn mirror_step(sfu: &mut Sfu, now: Instant, links: Vec<LinkMsg>) -> usize {
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

/// Bytes of the payload of [`Harness::publish_audio`]'s packets: larger than any RTCP
/// the engine sends, so its datagrams are told apart by size.
pub const AUDIO_PAYLOAD: usize = 300;

/// Takes the engine's outputs; returns the video datagrams sent.
pub fn drain(sfu: &mut Sfu, links: &mut Vec<LinkMsg>) -> usize {
    drain_larger(sfu, links, 1000)
}

/// Takes the engine's outputs; returns the datagrams larger than `min` bytes sent.
pub fn drain_larger(sfu: &mut Sfu, links: &mut Vec<LinkMsg>, min: usize) -> usize {
    let mut sent = 0;
    while let Some(out) = sfu.poll_output() {
        match out {
            SfuOutput::Transmit(t) => sent += usize::from(t.contents.len() > min),
            SfuOutput::Link(_, msg) => links.push(msg),
            _ => {}
        }
    }
    sent
}
