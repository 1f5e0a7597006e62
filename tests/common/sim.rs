//! One shard and the shared str0m participants (`lanrelay_peer::Peer`) wired together
//! in memory on a fake clock: ICE, DTLS, SRTP, NACKs and renegotiation run for real,
//! without sockets or waiting, so a test can say exactly what happens when. What each
//! participant is told is kept as a transcript; datagrams the shard sends to nobody's
//! address are kept too, and a loss rule can drop what the server sends to one
//! participant.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::disallowed_methods)] // the fake clock starts from the real one

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanrelay::sfu::shard::{Output, Shard, ShardConfig};
use lanrelay::signaling::protocol::{ClientMsg, Mode, PeerId, Role, ServerMsg};
use lanrelay_peer::payload::{self, Stamp, Vp8Packet};
use lanrelay_peer::{Peer, PeerConfig, PeerEvent, PeerOutput, RtpOut, Track};
use str0m::format::Codec;
use str0m::ice::StunMessage;
use str0m::media::{Direction, MediaKind, Mid, Rid};

pub const SERVER: &str = "10.0.0.1:5000";

/// One participant.
pub struct Member {
    pub id: PeerId,
    pub peer: Peer,
    /// Its video m-line, when it publishes.
    pub video: Option<Mid>,
    /// The simulcast layers it sends, best first (empty: one stream).
    pub rids: Vec<&'static str>,
    pub connected: bool,
    /// The server's ICE credentials towards it, from the server's answer.
    pub server_ufrag: String,
    pub server_pass: String,
    /// The last binding request it sent, as sent.
    pub last_check: Option<Vec<u8>>,
    /// Stamp numbers of the intact packets it received.
    pub stamps: BTreeSet<u32>,
    /// Video packets it received with a transport-wide sequence number, and without.
    pub with_transport_seq: u64,
    pub without_transport_seq: u64,
    /// The server asked it for a keyframe; its next frame is one (as a browser does).
    pub keyframe_asked: bool,
}

/// A shard with participants in one room.
pub struct Sim {
    pub shard: Shard,
    pub server: SocketAddr,
    pub start: Instant,
    pub now: Instant,
    pub members: Vec<Member>,
    /// What each participant was told, in order: "t=MS id=ID what".
    pub transcript: Vec<String>,
    /// Addresses the shard sent datagrams to that belong to no participant.
    pub strays: Vec<SocketAddr>,
    /// Drops every `n`th datagram the server sends to participant `id`.
    pub loss: Option<(PeerId, u64)>,
    sent_to_lossy: u64,
    /// Sizes of the datagrams the loss rule dropped.
    pub dropped: Vec<usize>,
    /// Participants who join from now on negotiate transport-wide congestion control
    /// feedback (as browsers do), so the server estimates the bandwidth towards them.
    pub twcc: bool,
    /// Stamp number of the next packet a publisher sends.
    number: u32,
    seq: u64,
    picture_id: u16,
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        let server: SocketAddr = SERVER.parse().unwrap();
        let now = Instant::now();
        Sim {
            shard: Shard::new(ShardConfig {
                candidates: vec![server],
                tcp_candidates: vec![],
                room_capacity: 16,
                viewer_capacity: 0,
                room_tokens: Default::default(),
                operator_token: None,
                worker: 0,
                seed,
                connect_timeout: Duration::from_secs(30),
                direct_rate: 20,
                chat: Default::default(),
                record: None,
                bandwidth_estimation: true,
            }),
            server,
            start: now,
            now,
            members: Vec::new(),
            transcript: Vec::new(),
            strays: Vec::new(),
            loss: None,
            sent_to_lossy: 0,
            dropped: Vec::new(),
            twcc: false,
            number: 0,
            seq: 1000,
            picture_id: 0,
        }
    }

    pub fn member(&self, id: PeerId) -> &Member {
        self.members.iter().find(|m| m.id == id).expect("a member")
    }

    /// `id` joins `room` in `role`; a publisher sends video with `rids` (empty: one
    /// stream), a viewer receives.
    pub fn join(&mut self, id: PeerId, role: Role, publish: Option<&[&'static str]>) {
        let local: SocketAddr = format!("10.0.1.{id}:6000").parse().unwrap();
        let cfg = PeerConfig {
            local,
            rtp_mode: true,
            twcc: self.twcc,
            tcp: false,
            video: Codec::Vp8,
        };
        let mut peer = Peer::new(cfg, self.now).unwrap();
        let track = match publish {
            Some(rids) => Track {
                kind: MediaKind::Video,
                direction: Direction::SendOnly,
                send_rids: rids,
            },
            None => Track::new(MediaKind::Video, Direction::RecvOnly),
        };
        let (offer, mids) = peer.offer(&[track]).unwrap();
        let name = format!("p{id}");
        self.shard
            .join(self.now, id, "room", &name, role, Mode::Relay, (None, None));
        self.members.push(Member {
            id,
            peer,
            video: publish.map(|_| mids[0]),
            rids: publish.map(|r| r.to_vec()).unwrap_or_default(),
            connected: false,
            server_ufrag: String::new(),
            server_pass: String::new(),
            last_check: None,
            stamps: BTreeSet::new(),
            with_transport_seq: 0,
            without_transport_seq: 0,
            keyframe_asked: false,
        });
        self.shard
            .handle_signal(self.now, id, ClientMsg::Offer { sdp: offer });
        self.exchange();
    }

    /// Runs until everyone is connected (at most 3 s of fake time).
    pub fn connect(&mut self) {
        for _ in 0..3000 {
            self.pump(1);
            if self.members.iter().all(|m| m.connected) {
                return;
            }
        }
        panic!("everyone connects");
    }

    /// Lets `ms` milliseconds of fake time pass, delivering everything in memory.
    pub fn pump(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            for m in &mut self.members {
                m.peer.timeout(self.now);
            }
            self.shard.handle_timeout(self.now);
            self.exchange();
        }
    }

    /// Moves datagrams and signaling until quiet.
    pub fn exchange(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.members.len() {
                while let Ok(out) = self.members[i].peer.poll() {
                    match out {
                        PeerOutput::Timeout(_) => break,
                        PeerOutput::Transmit(t) => {
                            moved = true;
                            let m = &mut self.members[i];
                            if StunMessage::parse(&t.contents).is_ok_and(|s| s.is_binding_request())
                            {
                                m.last_check = Some(t.contents.to_vec());
                            }
                            self.shard.handle_datagram(
                                self.now,
                                t.source,
                                t.destination,
                                &t.contents,
                            );
                        }
                        PeerOutput::Event(PeerEvent::Connected) => self.members[i].connected = true,
                        PeerOutput::Event(PeerEvent::KeyframeRequest { .. }) => {
                            self.members[i].keyframe_asked = true
                        }
                        PeerOutput::Event(PeerEvent::Packet(p)) => {
                            let m = &mut self.members[i];
                            if let Some(s) = p.stamp {
                                m.stamps.insert(s.number);
                            }
                            if p.kind == Some(MediaKind::Video) {
                                match p.transport_seq {
                                    Some(_) => m.with_transport_seq += 1,
                                    None => m.without_transport_seq += 1,
                                }
                            }
                        }
                        PeerOutput::Event(_) => {}
                    }
                }
            }
            while let Some(out) = self.shard.poll_output() {
                moved = true;
                match out {
                    Output::Transmit(t) => {
                        let Some(i) = self
                            .members
                            .iter()
                            .position(|m| m.peer.local() == t.destination)
                        else {
                            self.strays.push(t.destination);
                            continue;
                        };
                        if let Some((lossy, n)) = self.loss {
                            if self.members[i].id == lossy {
                                self.sent_to_lossy += 1;
                                if self.sent_to_lossy % n == 0 {
                                    self.dropped.push(t.contents.len());
                                    continue;
                                }
                            }
                        }
                        let now = self.now;
                        self.members[i]
                            .peer
                            .receive(now, t.source, t.destination, &t.contents);
                    }
                    Output::Signal(id, msg) => self.signal(id, msg),
                    _ => {}
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn signal(&mut self, id: PeerId, msg: ServerMsg) {
        let t = self.now.duration_since(self.start).as_millis();
        if let Some(what) = summary(&msg) {
            self.transcript.push(format!("t={t} id={id} {what}"));
        }
        let now = self.now;
        let Some(m) = self.members.iter_mut().find(|m| m.id == id) else {
            return;
        };
        match msg {
            ServerMsg::Answer { sdp } => {
                m.server_ufrag = ice_attr(&sdp, "ice-ufrag");
                m.server_pass = ice_attr(&sdp, "ice-pwd");
                m.peer.accept_answer(&sdp).unwrap();
            }
            ServerMsg::Offer { sdp, .. } => {
                let answer = m.peer.accept_offer(&sdp).unwrap();
                self.shard
                    .handle_signal(now, id, ClientMsg::Answer { sdp: answer });
            }
            _ => {}
        }
    }

    /// A message from participant `id`.
    pub fn say(&mut self, id: PeerId, msg: ClientMsg) {
        self.shard.handle_signal(self.now, id, msg);
        self.exchange();
    }

    /// Every publisher sends one video frame (one packet per layer; the best layer
    /// the largest; a keyframe when asked or when the server asked for one), then
    /// 33 ms pass.
    pub fn frame(&mut self, keyframe: bool) {
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        self.seq += 1;
        let (now, seq, picture_id) = (self.now, self.seq, self.picture_id);
        let mut number = self.number;
        for m in &mut self.members {
            let Some(mid) = m.video else {
                continue;
            };
            let keyframe = keyframe || std::mem::take(&mut m.keyframe_asked);
            let layers: Vec<Option<&str>> = match m.rids.is_empty() {
                true => vec![None],
                false => m.rids.iter().map(|r| Some(*r)).collect(),
            };
            for (i, rid) in layers.into_iter().enumerate() {
                number += 1;
                let shrink = 1 << (2 * i);
                let data = payload::vp8(
                    Vp8Packet {
                        picture_id,
                        first: true,
                        keyframe,
                        width: (1280 / (1 << i)) as u16,
                        height: (720 / (1 << i)) as u16,
                    },
                    (1100 / shrink).max(120),
                    Stamp {
                        stream: 1,
                        number,
                        sent_ns: 0,
                    },
                );
                let out = RtpOut {
                    mid,
                    rid: rid.map(Rid::from),
                    codec: Codec::Vp8,
                    seq,
                    rtp_ts: (seq * 3000) as u32,
                    marker: true,
                    nackable: true,
                    payload: data,
                };
                assert!(m.peer.write_rtp(now, out), "the publisher writes");
            }
        }
        self.number = number;
        self.pump(33);
    }

    /// A datagram from `from` to the server's media port.
    pub fn inject(&mut self, from: SocketAddr, bytes: &[u8]) {
        self.shard
            .handle_datagram(self.now, from, self.server, bytes);
        self.exchange();
    }
}

/// A server message as the transcript shows it (no SDP bodies or measurements).
fn summary(msg: &ServerMsg) -> Option<String> {
    Some(match msg {
        ServerMsg::Joined { peers, mode, .. } => {
            format!("joined peers={} mode={mode:?}", peers.len())
        }
        ServerMsg::PeerJoined { peer } => format!("peer-joined {}", peer.id),
        ServerMsg::PeerLeft { id, reason } => format!("peer-left {id} {reason}"),
        ServerMsg::Offer { .. } => "offer".into(),
        // The server's ufrag comes from the shard's seeded generator: the same seed,
        // the same ufrag.
        ServerMsg::Answer { sdp } => format!("answer ufrag={}", ice_attr(sdp, "ice-ufrag")),
        ServerMsg::Layer {
            peer, rid, reason, ..
        } => format!("layer {peer} {rid} ({reason})"),
        ServerMsg::Viewers { count } => format!("viewers {count}"),
        ServerMsg::PeerMedia { id, audio, video } => format!("media {id} a={audio} v={video}"),
        ServerMsg::Error { code, .. } => format!("error {code:?}"),
        ServerMsg::Stats { .. } => return None,
        other => format!("{other:?}"),
    })
}

fn ice_attr(sdp: &str, name: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix(&format!("a={name}:")))
        .expect("ICE credentials in the SDP")
        .trim()
        .to_string()
}
