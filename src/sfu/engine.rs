//! The media engine's I/O shell: the one task that owns the UDP sockets, the timers and
//! the [`Sfu`]. Signaling sessions talk to it through a channel of [`Command`]s and get
//! their messages back on their own channels. No locks: only this task touches media.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;
use tracing::{debug, error, warn};

use super::core::{Output, RoomSnapshot, Sfu, SfuConfig};
use super::udp::UdpIo;
use crate::signaling::protocol::{ClientMsg, ErrorCode, Mode, PeerId, Role, ServerMsg};

/// Queue length of one session's outgoing messages. A session that falls this far
/// behind is disconnected rather than allowed to grow the engine's memory.
pub const SESSION_QUEUE: usize = 256;

/// What a signaling session asks of the engine.
#[derive(Debug)]
pub enum Command {
    Join {
        id: PeerId,
        room: String,
        name: String,
        role: Role,
        mode: Mode,
        token: Option<String>,
        /// Where the engine sends this participant's messages.
        tx: mpsc::Sender<ServerMsg>,
    },
    Signal {
        id: PeerId,
        msg: ClientMsg,
    },
    Leave {
        id: PeerId,
        reason: &'static str,
    },
    /// Answers with a snapshot of the engine's state.
    Status {
        reply: tokio::sync::oneshot::Sender<Status>,
    },
    /// Answers with every room, its participants and their stats.
    Rooms {
        reply: tokio::sync::oneshot::Sender<Vec<RoomSnapshot>>,
    },
    /// A WHIP (publish) or WHEP (play) offer for a room.
    HttpSession {
        whep: bool,
        id: PeerId,
        room: String,
        token: Option<String>,
        offer: String,
        reply: tokio::sync::oneshot::Sender<HttpSessionResult>,
    },
    /// Ends a WHIP/WHEP session by its resource id; answers whether it existed.
    EndResource {
        resource: String,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
}

/// The resource id and SDP answer of a new WHIP/WHEP session, or why it was refused.
pub type HttpSessionResult = Result<(String, String), (ErrorCode, String)>;

/// A snapshot of the engine, for health checks and tests.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub rooms: usize,
    pub participants: usize,
    pub forwarded_packets: u64,
    /// RTP payload bytes forwarded (without headers and SRTP overhead).
    pub forwarded_bytes: u64,
    pub unroutable_datagrams: u64,
    pub rejected_datagrams: u64,
    /// Seconds the engine task (worker 0) spent handling inputs and sending, as
    /// opposed to waiting: its load.
    pub worker_busy_seconds: f64,
}

/// The engine's command channel; cheap to clone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
}

impl EngineHandle {
    /// Sends a command; false when the engine has stopped.
    pub async fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    pub async fn status(&self) -> Option<Status> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Command::Status { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Starts a WHIP (`whep` false) or WHEP session.
    pub async fn http_session(
        &self,
        whep: bool,
        room: String,
        token: Option<String>,
        offer: String,
    ) -> HttpSessionResult {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let id = crate::signaling::session::next_peer_id();
        let cmd = Command::HttpSession {
            whep,
            id,
            room,
            token,
            offer,
            reply,
        };
        let unavailable = || {
            (
                ErrorCode::Unavailable,
                "the media engine is not running".to_string(),
            )
        };
        self.tx.send(cmd).await.map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())?
    }

    /// Ends a WHIP/WHEP session; false when it does not exist.
    pub async fn end_resource(&self, resource: String) -> bool {
        let (reply, rx) = tokio::sync::oneshot::channel();
        if self
            .tx
            .send(Command::EndResource { resource, reply })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    pub async fn rooms(&self) -> Option<Vec<RoomSnapshot>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Command::Rooms { reply }).await.ok()?;
        rx.await.ok()
    }
}

/// The media sockets plus the address rules for them.
pub struct MediaSockets {
    pub sockets: Vec<UdpIo>,
    pub candidates: Vec<SocketAddr>,
}

/// Room limits and access rules.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub room_capacity: usize,
    pub viewer_capacity: usize,
    pub room_tokens: HashMap<String, String>,
}

/// Starts the engine task. It runs until every [`EngineHandle`] is dropped.
pub fn spawn(media: MediaSockets, limits: Limits) -> EngineHandle {
    let (tx, rx) = mpsc::channel(1024);
    let sfu = Sfu::new(SfuConfig {
        candidates: media.candidates.clone(),
        room_capacity: limits.room_capacity,
        viewer_capacity: limits.viewer_capacity,
        room_tokens: limits.room_tokens,
    });
    tokio::spawn(run(sfu, media, rx));
    EngineHandle { tx }
}

struct Shell {
    sockets: Vec<UdpIo>,
    candidates: Vec<SocketAddr>,
    sessions: HashMap<PeerId, mpsc::Sender<ServerMsg>>,
    /// Time spent between waking up and going back to wait, for `/metrics`.
    busy: Duration,
}

async fn run(mut sfu: Sfu, media: MediaSockets, mut rx: mpsc::Receiver<Command>) {
    let mut shell = Shell {
        sockets: media.sockets,
        candidates: media.candidates,
        sessions: HashMap::new(),
        busy: Duration::ZERO,
    };
    if shell.sockets.is_empty() {
        error!("no media socket: the engine cannot run");
        return;
    }
    let mut woke = std::time::Instant::now();
    loop {
        shell.flush(&mut sfu);
        shell.busy += woke.elapsed();
        let deadline = sfu
            .poll_timeout()
            .map(TokioInstant::from_std)
            .unwrap_or_else(|| TokioInstant::now() + Duration::from_secs(1));
        let has_second = shell.sockets.len() > 1;
        tokio::select! {
            cmd = rx.recv() => {
                woke = std::time::Instant::now();
                let Some(cmd) = cmd else { break };
                shell.command(&mut sfu, cmd);
            }
            r = shell.sockets[0].readable() => {
                woke = std::time::Instant::now();
                shell.read(&mut sfu, 0, r);
            }
            r = async { shell.sockets[1].readable().await }, if has_second => {
                woke = std::time::Instant::now();
                shell.read(&mut sfu, 1, r);
            }
            _ = tokio::time::sleep_until(deadline) => {
                woke = std::time::Instant::now();
                sfu.handle_timeout(std::time::Instant::now());
            }
        }
    }
    debug!("media engine stopped");
}

impl Shell {
    fn command(&mut self, sfu: &mut Sfu, cmd: Command) {
        let now = std::time::Instant::now();
        match cmd {
            Command::Join {
                id,
                room,
                name,
                role,
                mode,
                token,
                tx,
            } => {
                self.sessions.insert(id, tx);
                sfu.join(id, &room, &name, role, mode, token.as_deref());
            }
            Command::Signal { id, msg } => sfu.handle_signal(now, id, msg),
            Command::Leave { id, reason } => {
                sfu.leave(now, id, reason);
                self.sessions.remove(&id);
            }
            Command::HttpSession {
                whep,
                id,
                room,
                token,
                offer,
                reply,
            } => {
                let r = if whep {
                    sfu.whep(now, id, &room, token.as_deref(), &offer)
                } else {
                    sfu.whip(now, id, &room, token.as_deref(), &offer)
                };
                let _ = reply.send(r);
            }
            Command::EndResource { resource, reply } => {
                let _ = reply.send(sfu.end_resource(now, &resource));
            }
            Command::Rooms { reply } => {
                let _ = reply.send(sfu.rooms_snapshot());
            }
            Command::Status { reply } => {
                let c = sfu.counters();
                let _ = reply.send(Status {
                    rooms: sfu.room_count(),
                    participants: sfu.peer_count(),
                    forwarded_packets: c.forwarded,
                    forwarded_bytes: c.forwarded_bytes,
                    unroutable_datagrams: c.unroutable,
                    rejected_datagrams: c.rejected,
                    worker_busy_seconds: self.busy.as_secs_f64(),
                });
            }
        }
    }

    fn read(&mut self, sfu: &mut Sfu, index: usize, ready: std::io::Result<()>) {
        if let Err(e) = ready {
            warn!("media socket error: {e}");
            return;
        }
        let port = self.sockets[index].local_addr().port();
        let fallback = self.sockets[index].local_addr().ip();
        let candidates = &self.candidates;
        // Read a bounded number of batches so commands and timers keep their turn.
        for _ in 0..16 {
            let now = std::time::Instant::now();
            let res = self.sockets[index].try_recv(|d| {
                let dst_ip = destination_ip(candidates, d.source, d.destination, fallback);
                sfu.handle_datagram(now, d.source, SocketAddr::new(dst_ip, port), d.contents);
            });
            match res {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    // ICMP errors surface here (e.g. a browser that closed its port).
                    debug!("media socket receive error: {e}");
                    break;
                }
            }
        }
    }

    fn flush(&mut self, sfu: &mut Sfu) {
        while let Some(out) = sfu.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let Some(sock) = self
                        .sockets
                        .iter()
                        .find(|s| s.local_addr().is_ipv4() == t.destination.is_ipv4())
                    else {
                        continue;
                    };
                    let src = source_ip(&self.candidates, sock.local_addr(), t.source);
                    sock.send(t.destination, src, &t.contents);
                }
                Output::Signal(id, msg) => {
                    let Some(tx) = self.sessions.get(&id) else {
                        continue;
                    };
                    if tx.try_send(msg).is_err() {
                        // Too slow or gone: dropping the sender ends the session, which
                        // then sends Leave.
                        warn!(id, "signaling queue full; disconnecting");
                        self.sessions.remove(&id);
                    }
                }
                Output::Close(id) => {
                    self.sessions.remove(&id);
                }
            }
        }
    }
}

/// The local address str0m must see as a datagram's destination: it must equal one of
/// the advertised candidates. With one candidate per family that candidate is used
/// (this also covers an advertised address that a 1:1 NAT maps to this host); with
/// several, the address the kernel reports.
fn destination_ip(
    candidates: &[SocketAddr],
    source: SocketAddr,
    reported: Option<IpAddr>,
    fallback: IpAddr,
) -> IpAddr {
    let mut same_family = candidates
        .iter()
        .filter(|c| c.is_ipv4() == source.is_ipv4());
    match (same_family.next(), same_family.next()) {
        (Some(only), None) => only.ip(),
        _ => reported.unwrap_or(fallback),
    }
}

/// The source address to send from: only needed when the socket is a wildcard and
/// several local addresses are advertised.
fn source_ip(candidates: &[SocketAddr], local: SocketAddr, source: SocketAddr) -> Option<IpAddr> {
    if !local.ip().is_unspecified() {
        return None;
    }
    let same_family = candidates
        .iter()
        .filter(|c| c.is_ipv4() == source.is_ipv4())
        .count();
    (same_family > 1).then_some(source.ip())
}

/// A message for sessions the engine cannot serve.
pub fn unavailable() -> ServerMsg {
    ServerMsg::error(ErrorCode::Unavailable, "the media engine is not running")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_uses_the_only_candidate_of_the_family() {
        let c: Vec<SocketAddr> = vec![
            "192.0.2.1:8443".parse().unwrap(),
            "[2001:db8::1]:8443".parse().unwrap(),
        ];
        let src: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let fallback: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(
            destination_ip(&c, src, Some("10.0.0.5".parse().unwrap()), fallback),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        let c2: Vec<SocketAddr> = vec![
            "192.0.2.1:8443".parse().unwrap(),
            "192.0.2.2:8443".parse().unwrap(),
        ];
        let reported: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(destination_ip(&c2, src, Some(reported), fallback), reported);
        assert_eq!(
            source_ip(
                &c2,
                "0.0.0.0:8443".parse().unwrap(),
                "192.0.2.2:8443".parse().unwrap()
            ),
            Some(reported)
        );
        assert_eq!(
            source_ip(
                &c,
                "0.0.0.0:8443".parse().unwrap(),
                "192.0.2.1:8443".parse().unwrap()
            ),
            None
        );
    }
}
