//! STUN from another host cannot steer a call's media. During a call (a publisher
//! and a viewer, real str0m peers wired to one shard in memory on a fake clock),
//! binding requests arrive from an attacker's address: one with the viewer's real
//! server ufrag but a wrong password, one with a forged ufrag, a real request of the
//! viewer's replayed, and a correctly signed request of the attacker's own session
//! spoofed from the viewer's address. After each, the viewer keeps receiving every
//! packet, nothing is sent to the attacker, and the refusals are counted.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lanrelay::sfu::shard::{Output, Shard, ShardConfig};
use lanrelay::signaling::protocol::{ClientMsg, Mode, PeerId, Role, ServerMsg};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::ice::{StunMessage, TransId};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Rtc};

const SERVER: &str = "10.0.0.1:5000";
const ATTACKER: &str = "10.0.9.9:6666";

/// A str0m participant wired to the shard in memory.
struct Peer {
    id: PeerId,
    addr: SocketAddr,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    video: Option<Mid>,
    connected: bool,
    /// The server's ICE credentials towards this peer, from its SDP.
    server_ufrag: String,
    server_pass: String,
    /// RTP packets received.
    received: u64,
    /// The last binding request this peer sent, as sent.
    last_check: Option<Vec<u8>>,
}

struct Call {
    shard: Shard,
    peers: Vec<Peer>,
    now: Instant,
    seq: u64,
    /// Datagrams the shard sent to the attacker's address.
    to_attacker: usize,
}

fn ice_attr(sdp: &str, name: &str) -> String {
    sdp.lines()
        .find_map(|l| l.strip_prefix(&format!("a={name}:")))
        .expect("ICE credentials in the SDP")
        .trim()
        .to_string()
}

impl Call {
    fn new() -> Call {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut call = Call {
            shard: Shard::new(ShardConfig {
                candidates: vec![server],
                room_capacity: 8,
                viewer_capacity: 0,
                room_tokens: Default::default(),
                worker: 0,
                seed: 7,
            }),
            peers: Vec::new(),
            now: Instant::now(),
            seq: 1000,
            to_attacker: 0,
        };
        call.join(1, Role::Participant, true);
        call.join(2, Role::Viewer, false);
        for _ in 0..3000 {
            call.pump(1);
            if call.peers.iter().all(|p| p.connected) {
                break;
            }
        }
        assert!(call.peers.iter().all(|p| p.connected), "the call connects");
        call.pump(50);
        call
    }

    fn join(&mut self, id: PeerId, role: Role, sends_video: bool) {
        let addr: SocketAddr = format!("10.0.1.{id}:6000").parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let dir = if sends_video {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        let video = api.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let name = format!("p{id}");
        self.shard
            .join(self.now, id, "call", &name, role, Mode::Relay, None);
        self.peers.push(Peer {
            id,
            addr,
            rtc,
            pending: Some(pending),
            video: sends_video.then_some(video),
            connected: false,
            server_ufrag: String::new(),
            server_pass: String::new(),
            received: 0,
            last_check: None,
        });
        self.shard.handle_signal(
            self.now,
            id,
            ClientMsg::Offer {
                sdp: offer.to_sdp_string(),
            },
        );
        self.exchange();
    }

    fn pump(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += Duration::from_millis(1);
            for p in &mut self.peers {
                let _ = p.rtc.handle_input(Input::Timeout(self.now));
            }
            self.shard.handle_timeout(self.now);
            self.exchange();
        }
    }

    fn exchange(&mut self) {
        let attacker: SocketAddr = ATTACKER.parse().unwrap();
        loop {
            let mut moved = false;
            let mut to_shard = VecDeque::new();
            for p in &mut self.peers {
                while let Ok(out) = p.rtc.poll_output() {
                    match out {
                        str0m::Output::Timeout(_) => break,
                        str0m::Output::Transmit(t) => {
                            if StunMessage::parse(&t.contents).is_ok_and(|m| m.is_binding_request())
                            {
                                p.last_check = Some(t.contents.to_vec());
                            }
                            to_shard.push_back((t.source, t.destination, t.contents.to_vec()));
                        }
                        str0m::Output::Event(Event::Connected) => p.connected = true,
                        str0m::Output::Event(Event::RtpPacket(_)) => p.received += 1,
                        str0m::Output::Event(_) => {}
                    }
                }
            }
            for (src, dst, buf) in to_shard {
                moved = true;
                self.shard.handle_datagram(self.now, src, dst, &buf);
            }
            while let Some(out) = self.shard.poll_output() {
                moved = true;
                match out {
                    Output::Transmit(t) => {
                        if t.destination == attacker {
                            self.to_attacker += 1;
                        }
                        let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination)
                        else {
                            continue;
                        };
                        let r = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                            .unwrap();
                        let _ = p.rtc.handle_input(Input::Receive(self.now, r));
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
        let now = self.now;
        let Some(p) = self.peers.iter_mut().find(|p| p.id == id) else {
            return;
        };
        match msg {
            ServerMsg::Answer { sdp } => {
                p.server_ufrag = ice_attr(&sdp, "ice-ufrag");
                p.server_pass = ice_attr(&sdp, "ice-pwd");
                let answer = SdpAnswer::from_sdp_string(&sdp).unwrap();
                let pending = p.pending.take().unwrap();
                p.rtc.sdp_api().accept_answer(pending, answer).unwrap();
            }
            ServerMsg::Offer { sdp } => {
                let offer = SdpOffer::from_sdp_string(&sdp).unwrap();
                let answer = p.rtc.sdp_api().accept_offer(offer).unwrap();
                self.shard.handle_signal(
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

    /// The publisher sends `n` video packets (a keyframe first) over 100 ms each.
    fn publish(&mut self, n: usize) {
        for i in 0..n {
            self.seq += 1;
            let mut payload = vec![0u8; 900];
            // A VP8 payload descriptor (S bit) and a keyframe header on the first.
            payload[0] = 0x10;
            payload[1] = if i == 0 { 0x00 } else { 0x01 };
            let p = &mut self.peers[0];
            let pt = p
                .rtc
                .codec_config()
                .find(|c| c.spec().codec == Codec::Vp8)
                .unwrap()
                .pt();
            let mid = p.video.unwrap();
            let ts = (self.seq * 3000) as u32;
            p.rtc
                .direct_api()
                .stream_tx_by_mid(mid, None)
                .unwrap()
                .write_rtp(RtpWrite::new(pt, self.seq.into(), ts, self.now, payload).marker(true));
            self.pump(100);
        }
    }

    /// A binding request from the attacker's address (or `from`).
    fn inject(&mut self, from: &str, bytes: &[u8]) {
        let server: SocketAddr = SERVER.parse().unwrap();
        let from: SocketAddr = from.parse().unwrap();
        self.shard.handle_datagram(self.now, from, server, bytes);
        self.exchange();
    }
}

fn sha1_hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// A binding request to the server's `ufrag`, signed with `pass`, nominating.
fn binding_request(ufrag: &str, pass: &str) -> Vec<u8> {
    let username = format!("{ufrag}:attacker");
    let msg = StunMessage::binding_request(&username, TransId::new(), true, 7, 2_130_706_431, true);
    let mut buf = vec![0u8; 512];
    let n = msg
        .to_bytes(Some(pass.as_bytes()), &mut buf, sha1_hmac)
        .unwrap();
    buf.truncate(n);
    buf
}

/// The viewer receives every one of `n` packets the publisher sends now.
fn viewer_keeps_receiving(call: &mut Call, what: &str) {
    let before = call.peers[1].received;
    call.publish(10);
    assert_eq!(
        call.peers[1].received - before,
        10,
        "after {what}: the viewer receives every packet"
    );
    assert_eq!(
        call.to_attacker, 0,
        "after {what}: nothing went to the attacker"
    );
}

#[test]
fn binding_requests_from_another_host_do_not_move_the_media() {
    let mut call = Call::new();
    viewer_keeps_receiving(&mut call, "the call started");
    let refused = |c: &Call| c.shard.counters().stun_refused;

    // The viewer's real server ufrag, a wrong password.
    let ufrag = call.peers[1].server_ufrag.clone();
    call.inject(
        ATTACKER,
        &binding_request(&ufrag, "not-the-password-at-all"),
    );
    assert_eq!(refused(&call), 1, "a wrong MESSAGE-INTEGRITY is refused");
    viewer_keeps_receiving(&mut call, "a wrong password");

    // A forged ufrag naming this worker.
    let unroutable = call.shard.counters().unroutable;
    call.inject(ATTACKER, &binding_request("Aforgedforgedfo", "whatever"));
    assert_eq!(call.shard.counters().unroutable, unroutable + 1);
    viewer_keeps_receiving(&mut call, "a forged ufrag");

    // A real request of the viewer's, replayed from the attacker's address.
    call.pump(6000);
    let replay = call.peers[1].last_check.clone().expect("the viewer checks");
    call.inject(ATTACKER, &replay);
    assert_eq!(
        refused(&call),
        2,
        "a replay from another address is refused"
    );
    viewer_keeps_receiving(&mut call, "a replayed request");

    // The publisher's own, correctly signed credentials, spoofed from the viewer's
    // address: an address another peer holds is not taken.
    let (u, p) = (
        call.peers[0].server_ufrag.clone(),
        call.peers[0].server_pass.clone(),
    );
    let viewer = call.peers[1].addr.to_string();
    call.inject(&viewer, &binding_request(&u, &p));
    assert_eq!(
        refused(&call),
        3,
        "an address held by another peer is refused"
    );
    viewer_keeps_receiving(&mut call, "a spoofed address");
}
