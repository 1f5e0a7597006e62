//! One simulated participant: the shared str0m participant (`lanrelay_peer::Peer`, RTP
//! mode, full ICE like a browser) on its own UDP socket, run as one tokio task. A
//! publisher paces synthetic VP8 video (a keyframe every few seconds and whenever
//! asked) and Opus-sized audio; a receiver checks every packet with a [`Probe`].
//! Receive sockets report each datagram's kernel arrival time ([`super::rxtime`]), so transit is measured to the moment the
//! packet reached the receiver, not to when the generator got round to reading it
//! (both are reported); the participant's `Rtc` is given that arrival time too, so its
//! transport-wide feedback does not report the generator's own reading delay. Signaling is done by the caller
//! ([`super::lanrelay`] or [`super::janus`]); for lanrelay the WebSocket stays with the
//! task so the server's renegotiation offers are answered during the call.
//!
//! A participant may also be driven on its own through a [`Control`] channel (the
//! soak does): leave now (with a goodbye, by dropping its sockets, or by going
//! silent), add a second video track mid-call, or hand over what it measured so far.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use lanrelay_peer::{Peer, PeerConfig, PeerError, PeerEvent, PeerOutput, RtpOut, Track};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::client::Ws;
use super::pacer::{Publisher, SIMULCAST_LAYERS};
use super::probe::{self, Probe};
use super::rxtime::{self, wall_ns};
use super::tcp::{self, TcpLink};
use super::LoadError;
use lanrelay::signaling::protocol::{ClientMsg, ServerMsg};
use lanrelay_peer::payload::{self, Stamp};

/// Where a run is; every participant task watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Joining and warming up: nothing is recorded.
    Connect,
    /// The measuring window: receivers record every packet.
    Measure,
    /// Leave and report.
    Stop,
}

/// How a participant leaves when told to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// `leave`, then a WebSocket close: what a browser's hang-up button does.
    Goodbye,
    /// Both sockets dropped without a word (a closed tab, a killed app): the server
    /// sees the TCP connection end.
    Drop,
    /// Nothing more is sent or read, but the sockets stay open for this long (a
    /// phone that lost the network): the server must time the session out.
    Vanish(std::time::Duration),
}

/// Orders for one participant, besides the run's shared [`Phase`].
#[derive(Debug)]
pub enum Control {
    Leave(Leave),
    /// Offer a second video track (a screen share) and send on it once answered:
    /// a renegotiation started by the participant.
    AddVideo,
    /// Hand over what was measured since the last snapshot (the probe and the send
    /// log), and start afresh.
    Snapshot(oneshot::Sender<Snapshot>),
}

/// What a participant measured between two [`Control::Snapshot`]s.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub probe: Probe,
    /// The stamp of every packet it wrote meanwhile.
    pub sent_log: Vec<Stamp>,
    /// M-lines in the server's last offer, and how many of them were stopped (port
    /// 0): a long-lived participant's session keeps one for every track that ever
    /// reached it.
    pub mlines: (usize, usize),
    pub error: Option<String>,
}

/// What one participant sends.
#[derive(Debug, Clone, Copy)]
pub struct Publish {
    pub video_kbps: u32,
    pub fps: u32,
    /// A keyframe every this many seconds (and whenever a receiver asks).
    pub keyframe_secs: u32,
    pub audio: bool,
    /// Three simulcast layers (rids `h`, `m`, `l` at all, 1/4 and 1/16 of the
    /// bitrate) instead of one stream.
    pub simulcast: bool,
}

/// Everything a participant task needs besides its signaling.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    /// Its room and who it is there (Janus's publisher and subscriber of one person
    /// share it): a receiver expects media from every other member who publishes.
    pub room: String,
    pub member: String,
    pub receives: bool,
    pub publish: Option<Publish>,
    /// Video streams it should receive; it counts as connected once each delivered.
    pub expect_video: usize,
    pub bind_ip: IpAddr,
    /// Negotiate transport-wide congestion control feedback (as browsers do).
    pub twcc: bool,
    /// Media over ICE-TCP to this server address (its HTTPS port), not UDP.
    pub tcp: Option<SocketAddr>,
}

/// State every participant shares with the controller.
#[derive(Debug, Clone)]
pub struct Shared {
    pub phase: watch::Receiver<Phase>,
    /// Participants that receive every stream they expect.
    pub ready: Arc<AtomicUsize>,
}

/// What a participant reports when it stops.
#[derive(Debug, Default)]
pub struct Outcome {
    pub name: String,
    pub room: String,
    pub member: String,
    pub receives: bool,
    pub joined_at: Option<Instant>,
    /// When it first received every video stream it expects.
    pub ready_at: Option<Instant>,
    pub probe: Probe,
    pub sent_packets: u64,
    /// The stamp of every packet it wrote (from joining on; the run picks the
    /// window), for the receivers' loss.
    pub sent_log: Vec<Stamp>,
    /// Datagrams the socket would not take (generator overloaded).
    pub send_drops: u64,
    pub error: Option<String>,
}

/// A participant's media side.
pub struct Media {
    peer: Peer,
    udp: UdpSocket,
    tcp: Option<TcpLink>,
    local: SocketAddr,
    spec: Spec,
    shared: Shared,
    publisher: Option<Publisher>,
    /// A second video track added mid-call ([`Control::AddVideo`]).
    share: Option<Publisher>,
    measuring: bool,
    /// (kernel arrival, read) of the datagram being handled, wall-clock nanoseconds.
    current_rx: (u64, u64),
    /// See [`Snapshot::mlines`].
    mlines: (usize, usize),
    /// Whose track each received m-line carries, from the server's latest offer.
    owners: Vec<(Mid, u64)>,
    outcome: Outcome,
}

impl Media {
    /// Binds the socket and builds the participant (full ICE, RTP mode, Opus + VP8).
    pub async fn new(spec: Spec, shared: Shared) -> Result<Media, LoadError> {
        let udp = UdpSocket::bind(SocketAddr::new(spec.bind_ip, 0))
            .await
            .map_err(LoadError::Io)?;
        rxtime::enable(&udp).map_err(LoadError::Io)?;
        let local = match spec.tcp {
            Some(_) => SocketAddr::new(spec.bind_ip, tcp::ACTIVE_PORT),
            None => udp.local_addr().map_err(LoadError::Io)?,
        };
        let now = Instant::now();
        let config = PeerConfig {
            local,
            rtp_mode: true,
            twcc: spec.twcc,
            tcp: spec.tcp.is_some(),
            video: Codec::Vp8,
        };
        let peer = Peer::new(config, now).map_err(media_error)?;
        let outcome = Outcome {
            name: spec.name.clone(),
            room: spec.room.clone(),
            member: spec.member.clone(),
            receives: spec.receives,
            joined_at: Some(now),
            ..Default::default()
        };
        Ok(Media {
            publisher: spec.publish.map(|p| Publisher::new(p, now)),
            share: None,
            peer,
            udp,
            tcp: None,
            local,
            spec,
            shared,
            measuring: false,
            current_rx: (0, 0),
            mlines: (0, 0),
            owners: Vec::new(),
            outcome,
        })
    }

    /// Marks the moment signaling started (join), for the time to connect.
    pub fn set_joined_at(&mut self, at: Instant) {
        self.outcome.joined_at = Some(at);
    }

    /// The first offer: send-only audio and video for a publisher, receive-only for a
    /// viewer (the server adds its own m-lines for what others publish).
    pub fn offer(&mut self, recvonly_placeholders: bool) -> Result<String, LoadError> {
        let rids: Vec<&str> = SIMULCAST_LAYERS.iter().map(|l| l.rid).collect();
        let mut tracks = Vec::new();
        if let Some(p) = self.publisher.as_ref() {
            if p.cfg.audio {
                tracks.push(Track::new(MediaKind::Audio, Direction::SendOnly));
            }
            tracks.push(Track {
                send_rids: if p.cfg.simulcast { &rids } else { &[] },
                ..Track::new(MediaKind::Video, Direction::SendOnly)
            });
        } else if recvonly_placeholders {
            tracks.push(Track::new(MediaKind::Audio, Direction::RecvOnly));
            tracks.push(Track::new(MediaKind::Video, Direction::RecvOnly));
        }
        let (sdp, mids) = self.peer.offer(&tracks).map_err(media_error)?;
        if let Some(p) = self.publisher.as_mut() {
            let mut mids = mids.into_iter();
            if p.cfg.audio {
                p.audio_mid = mids.next();
            }
            p.video_mid = mids.next();
        }
        Ok(sdp)
    }

    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), LoadError> {
        self.peer.accept_answer(sdp).map_err(sdp_error)
    }

    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, LoadError> {
        self.peer.accept_offer(sdp).map_err(sdp_error)
    }

    /// Runs the call until the phase says stop, answering lanrelay's renegotiation on
    /// `ws` if there is one. Returns what was measured.
    pub async fn run(self, ws: Option<Ws>) -> Outcome {
        self.run_controlled(ws, None).await
    }

    /// [`Media::run`], also taking orders from `control`.
    pub async fn run_controlled(
        mut self,
        mut ws: Option<Ws>,
        mut control: Option<mpsc::UnboundedReceiver<Control>>,
    ) -> Outcome {
        if let Some(server) = self.spec.tcp {
            match TcpLink::connect(server).await {
                Ok(link) => self.tcp = Some(link),
                Err(e) => {
                    self.outcome.error = Some(format!("ICE-TCP connection: {e}"));
                    return self.outcome;
                }
            }
        }
        let mut phase = self.shared.phase.clone();
        // A participant that joins while the run is measuring measures from the start.
        self.measuring = *phase.borrow_and_update() == Phase::Measure;
        let mut buf = vec![0u8; 2048];
        let mut immediate = 0u32;
        let mut leave = Leave::Goodbye;
        loop {
            let rtc_due = match self.drain() {
                Ok(t) => t,
                Err(e) => {
                    self.outcome.error = Some(e.to_string());
                    break;
                }
            };
            let due = [self.publisher.as_ref(), self.share.as_ref()]
                .into_iter()
                .flatten()
                .map(Publisher::next_due)
                .fold(rtc_due, Instant::min);
            // str0m sends queued RTP only on its next timeout, which it asks for "now".
            // A tokio timer would round that up to the next millisecond tick and add
            // up to 2 ms to every packet, so a timeout that is already due is handled
            // at once (a few times in a row at most, so sockets keep their turn).
            let now = Instant::now();
            if due <= now && immediate < 8 {
                immediate += 1;
                self.peer.timeout(now);
                if let Err(e) = self.send_due(now) {
                    self.outcome.error = Some(e.to_string());
                    break;
                }
                continue;
            }
            immediate = 0;
            let tcp_out = self.tcp.as_ref().is_some_and(TcpLink::has_queued);
            tokio::select! {
                r = self.udp.readable(), if self.tcp.is_none() => {
                    if r.is_err() {
                        continue;
                    }
                    self.read_all(&mut buf);
                }
                r = tcp::readable(&self.tcp) => {
                    if r.is_err() {
                        self.outcome.error = Some("ICE-TCP connection lost".into());
                        break;
                    }
                    if let Err(e) = self.read_tcp(&mut buf) {
                        self.outcome.error = Some(e);
                        break;
                    }
                }
                r = tcp::writable(&self.tcp), if tcp_out => {
                    if let (Ok(()), Some(link)) = (r, self.tcp.as_mut()) {
                        link.flush();
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(due)) => {
                    let now = Instant::now();
                    self.peer.timeout(now);
                    if let Err(e) = self.send_due(now) {
                        self.outcome.error = Some(e.to_string());
                        break;
                    }
                }
                m = next_ws(&mut ws) => {
                    match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Err(e) = self.on_signal(t.as_str(), &mut ws).await {
                                self.outcome.error = Some(e.to_string());
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => {
                            self.outcome.error = Some("signaling connection closed".into());
                            break;
                        }
                    }
                }
                c = next_control(&mut control) => {
                    match c {
                        Some(Control::Leave(how)) => {
                            leave = how;
                            break;
                        }
                        Some(Control::AddVideo) => {
                            if let Err(e) = self.add_video(&mut ws).await {
                                self.outcome.error = Some(e.to_string());
                                break;
                            }
                        }
                        Some(Control::Snapshot(reply)) => {
                            let _ = reply.send(Snapshot {
                                probe: std::mem::take(&mut self.outcome.probe),
                                sent_log: std::mem::take(&mut self.outcome.sent_log),
                                mlines: self.mlines,
                                error: None,
                            });
                        }
                        // The controller is gone: carry on until the phase says stop.
                        None => control = None,
                    }
                }
                r = phase.changed() => {
                    let p = if r.is_err() { Phase::Stop } else { *phase.borrow_and_update() };
                    match p {
                        Phase::Connect => {}
                        Phase::Measure => {
                            self.measuring = true;
                            self.outcome.probe = Probe::default();
                            self.outcome.sent_packets = 0;
                        }
                        Phase::Stop => break,
                    }
                }
            }
        }
        // A participant that failed still answers its controller's snapshots (with
        // the error), so a broken steady stream shows in the minute it broke.
        if let (Some(error), Some(control)) = (self.outcome.error.clone(), control.as_mut()) {
            while let Ok(c) = control.try_recv() {
                if let Control::Snapshot(reply) = c {
                    let _ = reply.send(Snapshot {
                        error: Some(error.clone()),
                        ..Default::default()
                    });
                }
            }
        }
        match leave {
            Leave::Goodbye => {
                if let Some(ws) = ws.as_mut() {
                    let leave = serde_json::to_string(&ClientMsg::Leave).unwrap_or_default();
                    let _ = ws.send(Message::text(leave)).await;
                    let _ = ws.close(None).await;
                }
                self.peer.close();
                let _ = self.drain();
            }
            Leave::Drop => {}
            Leave::Vanish(hold) => tokio::time::sleep(hold).await,
        }
        // The sockets close here, when `self` and `ws` are dropped.
        self.outcome
    }

    /// Offers a second send-only video track; its packets flow once it is answered.
    async fn add_video(&mut self, ws: &mut Option<Ws>) -> Result<(), LoadError> {
        let (Some(main), None) = (self.publisher.as_ref(), self.share.as_ref()) else {
            return Ok(());
        };
        if self.peer.has_pending_offer() {
            return Ok(());
        }
        let cfg = Publish {
            audio: false,
            simulcast: false,
            ..main.cfg
        };
        let (sdp, mids) = self
            .peer
            .offer(&[Track::new(MediaKind::Video, Direction::SendOnly)])
            .map_err(media_error)?;
        let mut share = Publisher::new(cfg, Instant::now());
        share.video_mid = mids.first().copied();
        self.share = Some(share);
        send_msg(ws, &ClientMsg::Offer { sdp }).await
    }

    /// Reads every queued datagram with its kernel arrival time, draining the `Rtc`
    /// after each.
    fn read_all(&mut self, buf: &mut [u8]) {
        let mut cmsg = rxtime::cmsg_buffer();
        loop {
            let res = rxtime::try_recv(&self.udp, buf, &mut cmsg);
            let (n, src, arrived) = match res {
                Ok((n, Some(src), arrived)) => (n, src, arrived),
                Ok(_) => continue,
                Err(_) => return,
            };
            let (read_at, read) = (Instant::now(), wall_ns());
            let arrived = arrived.unwrap_or(read);
            self.current_rx = (arrived, read);
            let at = rxtime::arrival_instant(read_at, read, arrived);
            self.peer.receive(at, src, self.local, &buf[..n]);
            if let Err(e) = self.drain() {
                self.outcome.error = Some(e.to_string());
                return;
            }
        }
    }

    /// Reads what the TCP connection has, feeding each whole frame to the participant.
    fn read_tcp(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let Some(link) = self.tcp.as_mut() else {
            return Ok(());
        };
        let server = link.server();
        for frame in link.read(buf)? {
            let read = wall_ns();
            self.current_rx = (read, read);
            self.peer
                .receive(Instant::now(), server, self.local, &frame);
            self.drain().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Drains the participant to its next timeout: sends datagrams, handles events.
    fn drain(&mut self) -> Result<Instant, LoadError> {
        loop {
            match self.peer.poll().map_err(media_error)? {
                PeerOutput::Timeout(t) => {
                    if let Some(link) = self.tcp.as_mut() {
                        link.flush();
                    }
                    return Ok(t);
                }
                PeerOutput::Transmit(t) if t.proto == Protocol::Tcp => {
                    if !self
                        .tcp
                        .as_mut()
                        .is_some_and(|link| link.queue(&t.contents))
                    {
                        self.outcome.send_drops += 1;
                    }
                }
                PeerOutput::Transmit(t) => {
                    if self.udp.try_send_to(&t.contents, t.destination).is_err() {
                        self.outcome.send_drops += 1;
                    }
                }
                PeerOutput::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: PeerEvent) {
        match e {
            PeerEvent::Packet(pkt) => {
                // Ready once every expected video track delivered an intact payload.
                if self.outcome.ready_at.is_none()
                    && pkt.kind == Some(MediaKind::Video)
                    && pkt.stamp.is_some()
                    && self.peer.received().intact_tracks(MediaKind::Video)
                        >= self.spec.expect_video
                {
                    self.outcome.ready_at = Some(pkt.time);
                    self.shared.ready.fetch_add(1, Ordering::Relaxed);
                }
                if self.measuring {
                    let (arrived, read) = self.current_rx;
                    let owner = pkt
                        .mid
                        .and_then(|m| self.owners.iter().find(|(o, _)| *o == m))
                        .map_or(0, |(_, p)| *p);
                    self.outcome.probe.record(
                        probe::source(pkt.ssrc, owner),
                        pkt.seq,
                        &pkt.payload,
                        pkt.stamp,
                        arrived,
                        read,
                    );
                }
            }
            PeerEvent::KeyframeRequest { .. } => {
                if let Some(p) = self.publisher.as_mut() {
                    p.keyframe_wanted = true;
                }
            }
            PeerEvent::Connected
                if self.spec.expect_video == 0 && self.outcome.ready_at.is_none() =>
            {
                self.outcome.ready_at = Some(Instant::now());
                self.shared.ready.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    async fn on_signal(&mut self, text: &str, ws: &mut Option<Ws>) -> Result<(), LoadError> {
        let msg: ServerMsg =
            serde_json::from_str(text).map_err(|e| LoadError::Signaling(e.to_string()))?;
        match msg {
            ServerMsg::Answer { sdp } => self.accept_answer(&sdp)?,
            // Glare: while an offer of ours waits, the server's crossing offer is
            // ignored (ours wins; the server re-offers after answering it), as the
            // web page does.
            ServerMsg::Offer { .. } if self.peer.has_pending_offer() => {}
            ServerMsg::Offer { sdp, tracks } => {
                self.mlines = count_mlines(&sdp);
                self.owners = tracks
                    .iter()
                    .map(|t| (Mid::from(t.mid.as_str()), t.peer))
                    .collect();
                let answer = self.accept_offer(&sdp)?;
                send_msg(ws, &ClientMsg::Answer { sdp: answer }).await?;
            }
            ServerMsg::Error { code, message } => {
                return Err(LoadError::Signaling(format!("{code:?}: {message}")))
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes every packet whose time has come, on the main tracks and the share.
    fn send_due(&mut self, now: Instant) -> Result<(), LoadError> {
        if !self.peer.is_connected() {
            return Ok(());
        }
        self.send_due_on(now, false)?;
        self.send_due_on(now, true)
    }

    fn publisher_mut(&mut self, share: bool) -> Option<&mut Publisher> {
        if share {
            self.share.as_mut()
        } else {
            self.publisher.as_mut()
        }
    }

    fn send_due_on(&mut self, now: Instant, share: bool) -> Result<(), LoadError> {
        if let Some(p) = self.publisher_mut(share) {
            p.schedule(now);
        }
        loop {
            let Some(p) = self.publisher_mut(share) else {
                return Ok(());
            };
            let Some(pkt) = p.queue.front().copied().filter(|q| q.at <= now) else {
                return Ok(());
            };
            p.queue.pop_front();
            let (mid, codec) = match pkt.kind {
                MediaKind::Audio => (p.audio_mid, Codec::Opus),
                MediaKind::Video => (p.video_mid, Codec::Vp8),
            };
            let rid = p.rid(pkt.slot);
            let number = p.numbers[pkt.slot];
            p.numbers[pkt.slot] += 1;
            let seq = p.seqs[pkt.slot];
            p.seqs[pkt.slot] += 1;
            let Some(mid) = mid else {
                continue;
            };
            let sent_ns = wall_ns();
            let stamp = Stamp {
                stream: pkt.slot as u8,
                number,
                sent_ns,
            };
            let data = match pkt.vp8 {
                Some(v) => payload::vp8(v, pkt.size, stamp),
                None => payload::opus(pkt.size, stamp),
            };
            let out = RtpOut {
                mid,
                rid,
                codec,
                seq,
                rtp_ts: pkt.rtp_ts,
                marker: pkt.marker,
                nackable: pkt.kind == MediaKind::Video,
                payload: data,
            };
            if !self.peer.write_rtp(now, out) {
                continue;
            }
            self.outcome.sent_packets += 1;
            self.outcome.sent_log.push(stamp);
            self.drain()?;
        }
    }
}

/// M-lines in an SDP, and those of them stopped (port 0).
fn count_mlines(sdp: &str) -> (usize, usize) {
    let lines = sdp.lines().filter_map(|l| l.strip_prefix("m="));
    lines.fold((0, 0), |(all, stopped), l| {
        let port = l.split_whitespace().nth(1);
        (all + 1, stopped + usize::from(port == Some("0")))
    })
}

/// The next order, or never when there is no control channel.
async fn next_control(control: &mut Option<mpsc::UnboundedReceiver<Control>>) -> Option<Control> {
    match control.as_mut() {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends a protocol message on the WebSocket, if there is one.
async fn send_msg(ws: &mut Option<Ws>, msg: &ClientMsg) -> Result<(), LoadError> {
    let Some(ws) = ws.as_mut() else {
        return Ok(());
    };
    let text = serde_json::to_string(msg).map_err(|e| LoadError::Signaling(e.to_string()))?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| LoadError::Signaling(e.to_string()))
}

/// The next WebSocket message, or never when there is no WebSocket.
async fn next_ws(
    ws: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws.as_mut() {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

fn media_error(e: PeerError) -> LoadError {
    LoadError::Media(e.to_string())
}

fn sdp_error(e: PeerError) -> LoadError {
    match e {
        PeerError::NoPendingOffer => LoadError::Signaling(e.to_string()),
        e => LoadError::Sdp(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stopped_mlines() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n";
        assert_eq!(count_mlines(sdp), (3, 1));
        assert_eq!(count_mlines("v=0\r\n"), (0, 0));
    }
}
