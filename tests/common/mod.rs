//! Shared pieces of the integration tests: the server started in-process on loopback
//! with ephemeral ports, and test participants that speak the real signaling over WSS
//! and the real media over UDP: a WSS and UDP shell around `lanrelay_peer::Peer`.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lanrelay::signaling::protocol::{ClientMsg, ErrorCode, MidOwner, PeerId, Role, ServerMsg};
use lanrelay::{Config, Server};
use lanrelay_peer::{frame, Peer, PeerConfig, PeerEvent, PeerOutput, Track};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("lanrelay-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts the server on 127.0.0.1 with ephemeral ports.
pub async fn start_server(room_capacity: usize) -> Server {
    // RUST_LOG=lanrelay=debug shows the server's log in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = Config::loopback(temp_dir("certs"));
    config.room_capacity = room_capacity;
    lanrelay::start(config).await.expect("server starts")
}

/// A TLS client configuration that trusts exactly the server's certificate.
pub fn tls_client(server: &Server) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens the signaling WebSocket.
pub async fn connect_ws(server: &Server) -> Ws {
    let url = format!("wss://127.0.0.1:{}/ws", server.https_addr.port());
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(tls_client(server))),
    )
    .await
    .expect("websocket connects");
    ws
}

pub async fn send(ws: &mut Ws, msg: &ClientMsg) {
    ws.send(Message::text(serde_json::to_string(msg).unwrap()))
        .await
        .unwrap();
}

/// The next protocol message, skipping pings; `None` when the socket closed.
pub async fn recv(ws: &mut Ws) -> Option<ServerMsg> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")?;
        match m.ok()? {
            Message::Text(t) => {
                return Some(serde_json::from_str(t.as_str()).expect("valid server message"))
            }
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Expects an error message with `code` (after the chat history, who hosts and the
/// host's recordings key that follow a `joined`, if they come first).
pub async fn expect_error(ws: &mut Ws, code: ErrorCode) -> String {
    loop {
        match recv(ws).await {
            Some(
                ServerMsg::ChatHistory { .. }
                | ServerMsg::Room { .. }
                | ServerMsg::RecordingAccess { .. },
            ) => continue,
            Some(ServerMsg::Error { code: c, message }) if c == code => return message,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }
}

/// A plain HTTPS GET; returns (status, body).
pub async fn https_get(server: &Server, path: &str) -> (u16, String) {
    let (status, _, body) = https_get_with(server, path, &[]).await;
    (status, body)
}

/// An HTTPS GET with extra request headers; returns (status, response head, body).
pub async fn https_get_with(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(tls_client(server));
    let tcp = TcpStream::connect(server.https_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
        .unwrap_or_default();
    (status, head, body)
}

/// What a test participant has seen so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub id: PeerId,
    pub connected: bool,
    /// Frames received, by the tag of the participant that sent them and kind.
    pub frames: HashMap<(String, MediaKind), u64>,
    /// Frames whose payload did not match what the sender wrote.
    pub corrupt: u64,
    /// Highest frame counter per (sender, kind), to check ordering and loss.
    pub last_counter: HashMap<(String, MediaKind), u32>,
    /// First frame counter seen per (sender, kind).
    pub first_counter: HashMap<(String, MediaKind), u32>,
    pub keyframe_requests: u64,
    pub joined: Vec<PeerId>,
    pub left: Vec<(PeerId, String)>,
    pub errors: Vec<(ErrorCode, String)>,
    pub server_offers: u64,
    /// The m-lines of the server's latest offer, and whose track it says each
    /// sending one carries.
    pub offer_mlines: usize,
    pub offer_owners: Vec<MidOwner>,
    /// `peerCodec` messages: (publisher, codec, decodable, message).
    pub codec_notes: Vec<(PeerId, String, bool, String)>,
    /// The codec of the latest `sendCodec` message.
    pub send_codec: Option<String>,
    /// Received m-lines that are active, by mid.
    pub recv_mids: Vec<Mid>,
    /// The latest viewer count the server announced.
    pub viewers: Option<usize>,
    /// The server's ICE ufrag towards this participant, from its answer.
    pub server_ufrag: Option<String>,
    /// Whether any SDP the server sent (answers, offers) negotiates transport-wide CC.
    pub server_twcc: bool,
    /// The resume token of the `joined` message.
    pub resume: Option<String>,
    /// The ids of the `joined` messages that came after a resume.
    pub resumed_as: Vec<PeerId>,
    /// Every `room` message: (host, locked).
    pub room: Vec<(Option<PeerId>, bool)>,
    /// The latest `held` message: (audio, video, by).
    pub held: Option<(bool, bool, PeerId)>,
    /// `peerMedia` messages: (id, audio, video).
    pub peer_media: Vec<(PeerId, bool, bool)>,
    /// The `recording` messages: (on, message).
    pub recording: Vec<(bool, Option<String>)>,
    /// The keys of `recordingAccess` messages (the host's to its room's recordings).
    pub recording_keys: Vec<String>,
    /// `peerScreen` messages: (participant, shares).
    pub screens: Vec<(PeerId, bool)>,
    /// `screenRefused` messages: (code, message).
    pub screen_refused: Vec<(ErrorCode, String)>,
    /// The counter of the last frame its share had sent when each `screenRefused`
    /// arrived: a later one was sent after the server refused or stopped the share.
    pub screen_sent_at_refusal: Vec<u32>,
    /// The counter of the last frame its share sent.
    pub screen_sent: u32,
}

/// Commands to a running test participant.
#[derive(Debug)]
pub enum PeerCmd {
    /// Ask the server for a keyframe on every received video track (PLI), `n` times.
    RequestKeyframe(u32),
    /// Go silent without closing anything: no WebSocket or UDP traffic, sockets kept open.
    Vanish,
    /// Drop every `up`-th outgoing and every `down`-th incoming RTP datagram (0: none).
    SetLoss { up: u32, down: u32 },
    /// Offer a second video track (like a screen share). With `glare`, the offer is
    /// sent in reply to the server's next offer instead of answering it, as a browser
    /// does when both sides offer at once.
    AddVideoTrack { glare: bool },
    /// Stop sending the second video track (its m-line becomes receive-only), as a
    /// browser does when a screen share ends.
    StopVideoTrack,
    /// Share a screen: say which new m-line carries it (`screen`), then offer it
    /// (send-only), as the page does.
    ShareScreen,
    /// Stop the share: `screen` with no m-line, then its m-line goes inactive, as the
    /// page does when its button or the browser's "Stop sharing" bar is pressed.
    StopScreen,
    /// Renegotiate with new ICE credentials.
    IceRestart,
    /// Lose the signaling connection (closed without a goodbye, as when a phone's
    /// network goes); media goes on.
    DropSignaling,
    /// Go on over this new signaling connection: resume with the token of `joined`.
    Resume(Box<Ws>),
    /// Send this message on the signaling connection.
    Say(ClientMsg),
    /// Stop sending audio (`true`), or send it again.
    Mute(bool),
    /// Stop sending video (`true`: the camera is off), or send it again.
    CameraOff(bool),
    /// Say goodbye and stop.
    Leave,
}

pub struct TestPeer {
    pub tag: String,
    pub seen: Arc<Mutex<Seen>>,
    cmd: mpsc::UnboundedSender<PeerCmd>,
    task: tokio::task::JoinHandle<()>,
}

impl TestPeer {
    /// Joins `room` as `tag`, negotiates audio+video with the server and starts sending.
    pub async fn join(server: &Server, room: &str, tag: &str) -> TestPeer {
        Self::join_as(server, room, tag, Role::Participant).await
    }

    /// Joins `room` as `tag` in `role`.
    pub async fn join_as(server: &Server, room: &str, tag: &str, role: Role) -> TestPeer {
        Self::join_with(server, room, tag, role, Codec::Vp8).await
    }

    /// Joins `room` as `tag` in `role`, sending and receiving video in `video` only.
    pub async fn join_with(
        server: &Server,
        room: &str,
        tag: &str,
        role: Role,
        video: Codec,
    ) -> TestPeer {
        Self::join_full(server, room, tag, role, video, None, None).await
    }

    /// Joins `room` as a participant `tag` with the `hostToken` `host_token`.
    pub async fn join_host(server: &Server, room: &str, tag: &str, host_token: &str) -> TestPeer {
        let token = Some(host_token);
        Self::join_full(
            server,
            room,
            tag,
            Role::Participant,
            Codec::Vp8,
            token,
            None,
        )
        .await
    }

    /// Joins `room` as `tag`, sending the real VP8 and Opus frames of `clip` (for
    /// tests that decode what was sent) instead of tagged frames.
    pub async fn join_with_clip(
        server: &Server,
        room: &str,
        tag: &str,
        clip: Arc<clip::Clip>,
    ) -> TestPeer {
        Self::join_full(
            server,
            room,
            tag,
            Role::Participant,
            Codec::Vp8,
            None,
            Some(clip),
        )
        .await
    }

    async fn join_full(
        server: &Server,
        room: &str,
        tag: &str,
        role: Role,
        video: Codec,
        host_token: Option<&str>,
        clip: Option<Arc<clip::Clip>>,
    ) -> TestPeer {
        let mut ws = connect_ws(server).await;
        send(
            &mut ws,
            &ClientMsg::Join {
                room: room.into(),
                name: tag.into(),
                role,
                mode: Default::default(),
                token: None,
                host_token: host_token.map(String::from),
            },
        )
        .await;
        let (id, resume) = match recv(&mut ws).await {
            Some(ServerMsg::Joined { id, resume, .. }) => (id, resume),
            other => panic!("{tag}: expected joined, got {other:?}"),
        };
        let seen = Arc::new(Mutex::new(Seen {
            id,
            resume,
            ..Default::default()
        }));
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let mut driver = Driver::new(tag, ws, seen.clone(), video).await;
        driver.clip = clip;
        let task = tokio::spawn(driver.run(cmd_rx));
        TestPeer {
            tag: tag.into(),
            seen,
            cmd,
            task,
        }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    pub fn frames_from(&self, tag: &str, kind: MediaKind) -> u64 {
        self.seen()
            .frames
            .get(&(tag.to_string(), kind))
            .copied()
            .unwrap_or(0)
    }

    pub fn command(&self, c: PeerCmd) {
        let _ = self.cmd.send(c);
    }

    /// A way to send this participant commands from another task.
    pub fn command_handle(&self) -> impl Fn(PeerCmd) + Send + 'static {
        let tx = self.cmd.clone();
        move |c| {
            let _ = tx.send(c);
        }
    }

    /// Waits until `f` holds for what this participant has seen.
    pub async fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&Seen) -> bool) {
        let end = Instant::now() + timeout;
        loop {
            if f(&self.seen()) {
                return;
            }
            if Instant::now() > end {
                panic!(
                    "{}: timed out waiting for {what}; seen: {:?}",
                    self.tag,
                    self.seen()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn leave(self) {
        self.command(PeerCmd::Leave);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

const AUDIO_EVERY: Duration = Duration::from_millis(20);
const VIDEO_EVERY: Duration = Duration::from_millis(33);

/// RTP or RTCP by its first byte (RFC 7983).
fn is_rtp(buf: &[u8]) -> bool {
    matches!(buf.first(), Some(128..=191))
}

/// The event loop of one test participant: the shared str0m participant (frame mode)
/// on a loopback UDP socket, the WebSocket, and periodic audio and video frames
/// tagged with the participant's tag (`lanrelay_peer::frame`).
struct Driver {
    tag: String,
    /// The signaling connection; `None` while it is lost.
    ws: Option<Ws>,
    peer: Peer,
    udp: UdpSocket,
    seen: Arc<Mutex<Seen>>,
    send_audio: Option<Mid>,
    send_video: Option<Mid>,
    send_video2: Option<Mid>,
    /// Its video codec (see `PeerConfig::video`).
    video: Codec,
    counters: [u32; 3],
    loss: (u32, u32),
    rtp_out: u32,
    rtp_in: u32,
    glare_pending: bool,
    /// Screen shares started (`true`) or stopped while an offer was out.
    screen_waiting: std::collections::VecDeque<bool>,
    keyframe_wanted: bool,
    start: Instant,
    /// Real frames to send instead of tagged ones, and where in them it is.
    clip: Option<Arc<clip::Clip>>,
    clip_video: usize,
    clip_audio: usize,
    /// The clip's last audio time: each 20 ms frame is at least 20 ms after the one
    /// before, like an encoder's sample clock (ticks that bunch up under load do not
    /// make frames overlap), and follows the wall clock across a mute.
    clip_audio_at: Option<Duration>,
    muted: bool,
    camera_off: bool,
}

impl Driver {
    async fn new(tag: &str, mut ws: Ws, seen: Arc<Mutex<Seen>>, video: Codec) -> Driver {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = udp.local_addr().unwrap();
        let now = Instant::now();
        let config = PeerConfig {
            local,
            rtp_mode: false,
            twcc: true,
            tcp: false,
            video,
        };
        let mut peer = Peer::new(config, now).unwrap();
        let (sdp, mids) = peer
            .offer(&[
                Track::new(MediaKind::Audio, Direction::SendRecv),
                Track::new(MediaKind::Video, Direction::SendRecv),
            ])
            .unwrap();
        send(&mut ws, &ClientMsg::Offer { sdp }).await;
        Driver {
            tag: tag.into(),
            ws: Some(ws),
            peer,
            udp,
            seen,
            send_audio: Some(mids[0]),
            send_video: Some(mids[1]),
            send_video2: None,
            video,
            counters: [0; 3],
            loss: (0, 0),
            rtp_out: 0,
            rtp_in: 0,
            glare_pending: false,
            screen_waiting: Default::default(),
            keyframe_wanted: true,
            start: now,
            clip: None,
            clip_video: 0,
            clip_audio: 0,
            clip_audio_at: None,
            muted: false,
            camera_off: false,
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<PeerCmd>) {
        let mut audio_tick = tokio::time::interval(AUDIO_EVERY);
        let mut video_tick = tokio::time::interval(VIDEO_EVERY);
        let mut buf = vec![0u8; 2000];
        loop {
            let timeout = match self.drain() {
                Some(t) => t,
                None => return,
            };
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout));
            tokio::select! {
                _ = sleep => self.peer.timeout(Instant::now()),
                r = self.udp.recv_from(&mut buf) => {
                    let Ok((n, src)) = r else { continue };
                    if is_rtp(&buf[..n]) {
                        self.rtp_in += 1;
                        if self.loss.1 > 0 && self.rtp_in % self.loss.1 == 0 {
                            continue;
                        }
                    }
                    let local = self.peer.local();
                    self.peer.receive(Instant::now(), src, local, &buf[..n]);
                }
                m = next_message(&mut self.ws) => {
                    match m {
                        Some(Ok(Message::Text(t))) => {
                            let msg: ServerMsg = serde_json::from_str(t.as_str()).unwrap();
                            self.on_signal(msg).await;
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                }
                _ = audio_tick.tick() => self.write_frame(MediaKind::Audio),
                _ = video_tick.tick() => self.write_frame(MediaKind::Video),
                c = cmds.recv() => match c {
                    Some(PeerCmd::RequestKeyframe(n)) => {
                        let mids = self.seen.lock().unwrap().recv_mids.clone();
                        for _ in 0..n {
                            for mid in &mids {
                                self.peer.request_keyframe(*mid);
                                let _ = self.drain();
                            }
                        }
                    }
                    Some(PeerCmd::SetLoss { up, down }) => self.loss = (up, down),
                    Some(PeerCmd::Mute(m)) => self.muted = m,
                    Some(PeerCmd::CameraOff(off)) => self.camera_off = off,
                    Some(PeerCmd::AddVideoTrack { glare: true }) => self.glare_pending = true,
                    Some(PeerCmd::AddVideoTrack { glare: false }) => self.offer_video_track().await,
                    Some(PeerCmd::StopVideoTrack) => {
                        if let Some(mid) = self.send_video2.take() {
                            if let Ok(sdp) = self.peer.offer_direction(mid, Direction::RecvOnly) {
                                self.say(&ClientMsg::Offer { sdp }).await;
                            }
                        }
                    }
                    Some(PeerCmd::ShareScreen) => self.screen(true).await,
                    Some(PeerCmd::StopScreen) => self.screen(false).await,
                    Some(PeerCmd::IceRestart) => {
                        if let Ok(sdp) = self.peer.offer_ice_restart() {
                            self.say(&ClientMsg::Offer { sdp }).await;
                        }
                    }
                    Some(PeerCmd::DropSignaling) => self.ws = None,
                    Some(PeerCmd::Say(msg)) => self.say(&msg).await,
                    Some(PeerCmd::Resume(ws)) => {
                        self.ws = Some(*ws);
                        let token = self.seen.lock().unwrap().resume.clone().unwrap_or_default();
                        self.say(&ClientMsg::Resume { token }).await;
                    }
                    Some(PeerCmd::Vanish) => {
                        // Keep both sockets open but never touch them again.
                        let keep = (self.ws, self.udp);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(keep);
                        return;
                    }
                    Some(PeerCmd::Leave) | None => {
                        if let Some(mut ws) = self.ws.take() {
                            let _ = send(&mut ws, &ClientMsg::Leave).await;
                            let _ = ws.close(None).await;
                        }
                        return;
                    }
                },
            }
        }
    }

    /// Drains the participant: sends datagrams, records events. `None` when it died.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            match self.peer.poll() {
                Ok(PeerOutput::Timeout(t)) => return Some(t),
                Ok(PeerOutput::Transmit(t)) => {
                    if is_rtp(&t.contents) {
                        self.rtp_out += 1;
                        if self.loss.0 > 0 && self.rtp_out % self.loss.0 == 0 {
                            continue;
                        }
                    }
                    let _ = self.udp.try_send_to(&t.contents, t.destination);
                }
                Ok(PeerOutput::Event(e)) => self.on_event(e),
                Err(e) => {
                    eprintln!("{}: rtc error {e}", self.tag);
                    return None;
                }
            }
        }
    }

    fn on_event(&mut self, e: PeerEvent) {
        let mut seen = self.seen.lock().unwrap();
        match e {
            PeerEvent::IceConnected | PeerEvent::Connected => seen.connected = true,
            PeerEvent::MediaAdded { mid, direction, .. } if !direction.is_sending() => {
                seen.recv_mids.push(mid)
            }
            PeerEvent::Frame(f) => match f.tagged {
                Some((tag, counter)) => {
                    *seen.frames.entry((tag.clone(), f.kind)).or_default() += 1;
                    seen.first_counter
                        .entry((tag.clone(), f.kind))
                        .or_insert(counter);
                    seen.last_counter.insert((tag, f.kind), counter);
                }
                None => seen.corrupt += 1,
            },
            PeerEvent::KeyframeRequest { .. } => {
                seen.keyframe_requests += 1;
                self.keyframe_wanted = true;
            }
            _ => {}
        }
    }

    async fn on_signal(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Answer { sdp } if self.peer.has_pending_offer() => {
                let ufrag = sdp
                    .lines()
                    .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                    .map(|u| u.trim().to_string());
                {
                    let mut seen = self.seen.lock().unwrap();
                    seen.server_ufrag = ufrag;
                    seen.server_twcc |= sdp.contains("transport-wide-cc");
                }
                self.peer.accept_answer(&sdp).unwrap();
                if let Some(share) = self.screen_waiting.pop_front() {
                    self.screen(share).await;
                }
            }
            ServerMsg::Offer { sdp, tracks } => {
                {
                    let mut seen = self.seen.lock().unwrap();
                    seen.server_offers += 1;
                    seen.server_twcc |= sdp.contains("transport-wide-cc");
                    seen.offer_mlines = sdp.lines().filter(|l| l.starts_with("m=")).count();
                    seen.offer_owners = tracks;
                }
                if self.peer.has_pending_offer() {
                    // Ours is out: like the page, ignore theirs; the server answers
                    // ours, then offers again.
                    return;
                }
                if self.glare_pending {
                    // Both sides offer: like a browser (impolite), ignore theirs, send ours.
                    self.glare_pending = false;
                    self.offer_video_track().await;
                    return;
                }
                let sdp = self.peer.accept_offer(&sdp).unwrap();
                self.say(&ClientMsg::Answer { sdp }).await;
            }
            ServerMsg::Joined { id, .. } => self.seen.lock().unwrap().resumed_as.push(id),
            ServerMsg::PeerJoined { peer } => self.seen.lock().unwrap().joined.push(peer.id),
            ServerMsg::Viewers { count } => self.seen.lock().unwrap().viewers = Some(count),
            ServerMsg::Recording { on, message } => {
                self.seen.lock().unwrap().recording.push((on, message))
            }
            ServerMsg::RecordingAccess { key } => {
                self.seen.lock().unwrap().recording_keys.push(key)
            }
            ServerMsg::PeerCodec {
                id,
                codec,
                decodable,
                message,
                ..
            } => self
                .seen
                .lock()
                .unwrap()
                .codec_notes
                .push((id, codec, decodable, message)),
            ServerMsg::SendCodec { codec, .. } => {
                self.seen.lock().unwrap().send_codec = Some(codec)
            }
            ServerMsg::PeerLeft { id, reason } => self.seen.lock().unwrap().left.push((id, reason)),
            ServerMsg::Room { host, locked, .. } => {
                self.seen.lock().unwrap().room.push((host, locked))
            }
            ServerMsg::Held { audio, video, by } => {
                self.seen.lock().unwrap().held = Some((audio, video, by))
            }
            ServerMsg::PeerMedia { id, audio, video } => self
                .seen
                .lock()
                .unwrap()
                .peer_media
                .push((id, audio, video)),
            ServerMsg::Error { code, message } => {
                self.seen.lock().unwrap().errors.push((code, message))
            }
            ServerMsg::PeerScreen { id, screen } => {
                self.seen.lock().unwrap().screens.push((id, screen))
            }
            ServerMsg::ScreenRefused { code, message } => {
                let mut seen = self.seen.lock().unwrap();
                seen.screen_refused.push((code, message));
                seen.screen_sent_at_refusal.push(self.counters[2]);
            }
            _ => {}
        }
    }

    /// Starts (`true`) or stops a screen share as the page does, once no offer of
    /// its own waits for an answer (one exchange at a time, as in a browser).
    async fn screen(&mut self, share: bool) {
        if self.peer.has_pending_offer() {
            self.screen_waiting.push_back(share);
            return;
        }
        if share {
            let track = Track::new(MediaKind::Video, Direction::SendOnly);
            let (sdp, mids) = self.peer.offer(&[track]).unwrap();
            self.send_video2 = mids.first().copied();
            let mid = self.send_video2.map(|m| m.to_string());
            self.say(&ClientMsg::Screen { mid }).await;
            self.say(&ClientMsg::Offer { sdp }).await;
        } else if let Some(mid) = self.send_video2.take() {
            self.say(&ClientMsg::Screen { mid: None }).await;
            if let Ok(sdp) = self.peer.offer_direction(mid, Direction::Inactive) {
                self.say(&ClientMsg::Offer { sdp }).await;
            }
        }
    }

    async fn offer_video_track(&mut self) {
        let track = Track::new(MediaKind::Video, Direction::SendRecv);
        let (sdp, mids) = self.peer.offer(&[track]).unwrap();
        self.send_video2 = mids.first().copied();
        self.say(&ClientMsg::Offer { sdp }).await;
    }

    /// Sends on the signaling connection, if there is one.
    async fn say(&mut self, msg: &ClientMsg) {
        if let Some(ws) = self.ws.as_mut() {
            send(ws, msg).await;
        }
    }

    fn write_frame(&mut self, kind: MediaKind) {
        self.write_frame_on(kind, false);
        if kind == MediaKind::Video && self.send_video2.is_some() {
            self.write_frame_on(kind, true);
        }
    }

    fn write_frame_on(&mut self, kind: MediaKind, second: bool) {
        if !self.peer.is_connected() {
            return;
        }
        match kind {
            MediaKind::Audio if self.muted => return,
            MediaKind::Video if self.camera_off => return,
            _ => {}
        }
        if let Some(clip) = self.clip.clone() {
            return self.write_clip(kind, &clip);
        }
        let (mid, codec, freq) = match kind {
            MediaKind::Audio => (self.send_audio, Codec::Opus, Frequency::FORTY_EIGHT_KHZ),
            MediaKind::Video => (self.send_video, self.video, Frequency::NINETY_KHZ),
        };
        let (mid, tag) = if second {
            (self.send_video2, format!("{}+", self.tag))
        } else {
            (mid, self.tag.clone())
        };
        let Some(mid) = mid else { return };
        let slot = match (kind, second) {
            (MediaKind::Audio, _) => 0,
            (MediaKind::Video, false) => 1,
            (MediaKind::Video, true) => 2,
        };
        self.counters[slot] += 1;
        let counter = self.counters[slot];
        if second {
            self.seen.lock().unwrap().screen_sent = counter;
        }
        // Like an encoder: a keyframe first, when asked, and every 3 s.
        let keyframe = kind == MediaKind::Video && (self.keyframe_wanted || counter % 90 == 0);
        if kind == MediaKind::Video && (second || self.send_video2.is_none()) {
            self.keyframe_wanted = false;
        }
        let mut data = frame::make(kind, &tag, counter, keyframe);
        if kind == MediaKind::Video && self.video == Codec::H264 {
            // One NAL unit after an Annex B start code: IDR slice or non-IDR slice.
            let nal = if keyframe { 0x65 } else { 0x41 };
            data.splice(0..0, [0, 0, 0, 1, nal]);
        }
        let now = Instant::now();
        let elapsed = now - self.start;
        let time = MediaTime::from_micros(elapsed.as_micros() as u64).rebase(freq);
        self.peer.write_frame(now, mid, codec, time, data);
    }
}

impl Driver {
    /// The clip's next frame of `kind`, looped; after a keyframe request, the video
    /// goes on from the clip's next keyframe (an encoder would make one).
    fn write_clip(&mut self, kind: MediaKind, clip: &clip::Clip) {
        let (mid, codec, freq, data) = match kind {
            MediaKind::Audio => {
                let data = clip.audio[self.clip_audio % clip.audio.len()].clone();
                self.clip_audio += 1;
                (
                    self.send_audio,
                    Codec::Opus,
                    Frequency::FORTY_EIGHT_KHZ,
                    data,
                )
            }
            MediaKind::Video => {
                let n = clip.video.len();
                if self.keyframe_wanted {
                    self.keyframe_wanted = false;
                    let at = self.clip_video % n;
                    let next = (at..n).find(|i| clip.video[*i].0).unwrap_or(0);
                    self.clip_video = next;
                }
                let data = clip.video[self.clip_video % n].1.clone();
                self.clip_video += 1;
                (self.send_video, Codec::Vp8, Frequency::NINETY_KHZ, data)
            }
        };
        let Some(mid) = mid else { return };
        let now = Instant::now();
        let mut elapsed = now - self.start;
        if kind == MediaKind::Audio {
            if let Some(prev) = self.clip_audio_at {
                elapsed = elapsed.max(prev + AUDIO_EVERY);
            }
            self.clip_audio_at = Some(elapsed);
        }
        let time = MediaTime::from_micros(elapsed.as_micros() as u64).rebase(freq);
        self.peer.write_frame(now, mid, codec, time, data);
    }
}

/// Real VP8 and Opus frames for the test participants (made with ffmpeg).
pub mod clip;

/// The next message of `ws`; never, while there is no connection.
async fn next_message(
    ws: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

pub mod cluster;
/// Requests for the certificate tests: HTTPS with a chosen trust and server name, and
/// plain HTTP for the helper port.
pub mod fetch;

/// Video frames `s` received from the participant tagged `tag`.
pub fn video_from(s: &Seen, tag: &str) -> u64 {
    s.frames
        .get(&(tag.into(), str0m::media::MediaKind::Video))
        .copied()
        .unwrap_or(0)
}
