//! One WebSocket connection: parses the browser's messages, checks them, hands them to
//! the media engine, and writes the engine's messages back. Detects a browser that
//! vanished without closing (no answer to pings). A connection that drops without
//! `leave` does not end the participant at once: it stays in its call for the resume
//! grace period, and a new connection that names its token takes it over
//! ([`super::resume`]); only then, or on `leave`, does the engine hear it left.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::protocol::{ClientMsg, ErrorCode, PeerId, ServerMsg, MAX_MESSAGE_BYTES};
use super::resume::Resumes;
use crate::rate::Pace;
use crate::sfu::engine::{self, Command, EngineHandle, SESSION_QUEUE};

/// How often the server pings an idle browser.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A browser silent for this long (no message, no pong) is considered gone.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(12);
/// A message that cannot be written for this long (the client stopped reading and the
/// connection's buffers are full) ends the session: a client that does not read
/// would otherwise hold its seat for as long as its TCP connection lives.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ended whose client took no message for [`SEND_TIMEOUT`].
const NOT_READING: &str = "not reading";

/// Each message counts as at least this many bytes against the reading rate, so tiny
/// messages cannot be sent by the hundred thousand.
const MIN_MESSAGE_COST: usize = 512;
/// Seconds' worth of the reading rate a client may send at once (joining and
/// negotiating come in a burst).
const READ_BURST: Duration = Duration::from_secs(4);

/// How fast the server reads one signaling connection: a client that sends more is
/// read more slowly (TCP holds it back), so it cannot take the server's time from
/// everyone else's calls.
#[derive(Debug, Clone)]
pub(crate) struct ReadLimit {
    pub(crate) bytes_per_sec: f64,
    /// Times a connection went over the rate, for `/metrics`.
    pub(crate) throttled: Arc<AtomicU64>,
}

impl ReadLimit {
    pub(crate) fn new(bytes_per_sec: u32) -> Self {
        ReadLimit {
            bytes_per_sec: f64::from(bytes_per_sec.max(1)),
            throttled: Arc::default(),
        }
    }

    pub(crate) fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// Serves one participant until it leaves: on its WebSocket, and on the new ones that
/// resume it (see [`super::resume`]).
/// `from`: the client's address, for the limits per address.
pub(crate) async fn run(
    ws: WebSocket,
    engine: EngineHandle,
    from: Option<IpAddr>,
    limit: ReadLimit,
    resumes: Arc<Resumes>,
) {
    let mut s = Session::new(engine, from, limit, resumes);
    let mut ws = ws;
    let reason = loop {
        match s.serve(&mut ws).await {
            End::Over(reason) => break reason,
            End::Resume(token) => {
                // This connection belongs to another participant's session now.
                if let Err((why, mut ws)) = s.resumes.hand_over(&token, Box::new(ws)) {
                    debug!(%why, "resume refused");
                    let _ = reply(
                        &mut ws,
                        ServerMsg::error(ErrorCode::ResumeRefused, why.to_string()),
                    )
                    .await;
                    let _ = send(&mut ws, Message::Close(None)).await;
                }
                return;
            }
            // A write can fail because the client closed right after saying `leave`:
            // what it sent before is read first, so a goodbye is not taken for a drop.
            End::Lost(_) if said_goodbye(&mut ws).await => break "left",
            End::Lost(reason) => match s.park().await {
                Some(new) => {
                    ws = *new;
                    if !s.resume().await {
                        break "error";
                    }
                }
                None => break reason,
            },
            End::TakenOver(new) => {
                // The old connection is dropped unread: the page has moved on.
                ws = *new;
                if !s.resume().await {
                    break "error";
                }
            }
        }
    };
    let id = s.id;
    debug!(id, reason, "session ended");
    if s.joined {
        s.engine.send(Command::Leave { id, reason }).await;
        // Deliver what the engine said last (e.g. why the join was refused).
        while let Ok(msg) = s.rx.try_recv() {
            if reply(&mut ws, msg).await.is_err() {
                break;
            }
        }
    }
    let _ = send(&mut ws, Message::Close(None)).await;
}

/// Whether the client's last messages, already received, include `leave` or a close
/// frame (read for a moment, without waiting for more).
async fn said_goodbye(ws: &mut WebSocket) -> bool {
    let deadline = Instant::now() + Duration::from_millis(200);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.recv()).await {
        match m {
            Message::Close(_) => return true,
            Message::Text(t) => {
                if matches!(
                    serde_json::from_str::<ClientMsg>(t.as_str()),
                    Ok(ClientMsg::Leave)
                ) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// A write failed for `why`: the connection dropped (the participant may be resumed),
/// or the client stopped reading, which ends it at once: a client that reads nothing
/// would otherwise hold its seat through the grace period as well.
fn lost(why: &'static str) -> End {
    if why == NOT_READING {
        End::Over(why)
    } else {
        End::Lost(why)
    }
}

/// How serving one WebSocket ended.
enum End {
    /// The participant is gone (left, refused, removed): it leaves for `reason`.
    Over(&'static str),
    /// The connection dropped: the participant may be resumed, or leaves for `reason`.
    Lost(&'static str),
    /// The connection's first message was `resume` with this token.
    Resume(String),
    /// A new connection resumed this participant while the old one was still open.
    TakenOver(Box<WebSocket>),
}

/// One participant's signaling, over one WebSocket after another.
struct Session {
    id: PeerId,
    engine: EngineHandle,
    from: Option<IpAddr>,
    limit: ReadLimit,
    resumes: Arc<Resumes>,
    pace: Pace,
    /// Where the engine's messages for this participant arrive; replaced on resume.
    rx: mpsc::Receiver<ServerMsg>,
    /// The sender of `rx`, until the join hands it to the engine.
    tx: Option<mpsc::Sender<ServerMsg>>,
    joined: bool,
    /// The resume token given in `joined`, and where connections that resume with it
    /// arrive; registered while the participant is in a room.
    token: Option<(String, mpsc::Receiver<Box<WebSocket>>)>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((token, _)) = &self.token {
            self.resumes.forget(token);
        }
    }
}

impl Session {
    fn new(
        engine: EngineHandle,
        from: Option<IpAddr>,
        limit: ReadLimit,
        resumes: Arc<Resumes>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<ServerMsg>(SESSION_QUEUE);
        Session {
            id: engine::next_peer_id(),
            pace: Pace::new(limit.bytes_per_sec, READ_BURST),
            engine,
            from,
            limit,
            resumes,
            rx,
            tx: Some(tx),
            joined: false,
            token: None,
        }
    }

    /// Serves `ws` until it closes, the participant goes, or another connection takes
    /// it over.
    async fn serve(&mut self, ws: &mut WebSocket) -> End {
        let id = self.id;
        // While set, the connection is not read until then.
        let mut paused: Option<Instant> = None;
        let mut last_heard = Instant::now();
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                incoming = ws.recv(), if paused.is_none() => {
                    let Some(Ok(message)) = incoming else { return End::Lost("disconnected") };
                    last_heard = Instant::now();
                    let size = match &message {
                        Message::Text(t) => t.len(),
                        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
                        Message::Close(_) => 0,
                    };
                    let cost = size.max(MIN_MESSAGE_COST) as f64;
                    if let Some(until) = self.pace.charge(cost, last_heard.into_std()) {
                        paused = Some(until.into());
                        self.limit.throttled.fetch_add(1, Ordering::Relaxed);
                        let msg = ServerMsg::error(ErrorCode::RateLimited, format!(
                            "you are sending more than {} KiB of messages a second; the server reads them more slowly",
                            (self.limit.bytes_per_sec / 1024.0).round()
                        ));
                        if let Err(why) = reply(ws, msg).await { return lost(why) }
                    }
                    let text = match message {
                        Message::Text(t) => t,
                        Message::Close(_) => return End::Over("left"),
                        Message::Ping(_) | Message::Pong(_) => continue,
                        Message::Binary(_) => {
                            if let Err(why) = reply(ws, ServerMsg::error(ErrorCode::BadMessage, "binary messages are not part of the protocol")).await {
                                return lost(why);
                            }
                            continue;
                        }
                    };
                    if text.len() > MAX_MESSAGE_BYTES {
                        let msg = ServerMsg::error(ErrorCode::TooLarge, format!("message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}", text.len()));
                        if let Err(why) = reply(ws, msg).await { return lost(why) }
                        continue;
                    }
                    let msg = match serde_json::from_str::<ClientMsg>(text.as_str()) {
                        Ok(m) => m,
                        Err(e) => {
                            let msg = ServerMsg::error(ErrorCode::BadMessage, format!("not a valid message: {e}"));
                            if let Err(why) = reply(ws, msg).await { return lost(why) }
                            continue;
                        }
                    };
                    let cmd = match msg {
                        ClientMsg::Join { room, name, role, mode, token, host_token } if !self.joined => {
                            self.joined = true;
                            let Some(tx) = self.tx.take() else { return End::Over("error") };
                            Command::Join { id, room, name, role, mode, token, host_token, tx, from: self.from }
                        }
                        ClientMsg::Resume { token } if !self.joined => return End::Resume(token),
                        ClientMsg::Join { .. } | ClientMsg::Resume { .. } => {
                            if let Err(why) = reply(ws, ServerMsg::error(ErrorCode::BadState, "already joined")).await { return lost(why) }
                            continue;
                        }
                        ClientMsg::Leave => return End::Over("left"),
                        _ if !self.joined => {
                            if let Err(why) = reply(ws, ServerMsg::error(ErrorCode::BadState, "join a room first")).await { return lost(why) }
                            continue;
                        }
                        msg => Command::Signal { id, msg },
                    };
                    if !self.engine.send(cmd).await {
                        let _ = reply(ws, engine::unavailable()).await;
                        return End::Over("error");
                    }
                }
                out = self.rx.recv(), if self.joined => {
                    // The engine dropped our channel: we were removed (room full, failure).
                    let Some(mut msg) = out else { return End::Over("closed") };
                    if let ServerMsg::Joined { resume, nodes, .. } = &mut msg {
                        if self.token.is_none() {
                            self.token = self.resumes.register();
                        }
                        *resume = self.token.as_ref().map(|(t, _)| t.clone());
                        if let Some(c) = self.engine.cluster() {
                            *nodes = c.other_nodes();
                        }
                    }
                    if let Err(why) = reply(ws, msg).await { return lost(why) }
                }
                new = takeover(&mut self.token) => return End::TakenOver(new),
                _ = tokio::time::sleep_until(paused.unwrap_or_else(Instant::now)), if paused.is_some() => {
                    paused = None;
                    // Not silent: it was the server that did not listen.
                    last_heard = Instant::now();
                }
                _ = ping.tick() => {
                    if paused.is_none() && last_heard.elapsed() > SILENCE_TIMEOUT {
                        return End::Lost("timeout");
                    }
                    if let Err(why) = send(ws, Message::Ping(Default::default())).await {
                        return lost(why);
                    }
                }
            }
        }
    }

    /// The connection dropped: the participant stays in its call, media flowing, for
    /// the grace period. Returns the connection that resumes it, or `None` when none
    /// came in time or the engine removed the participant meanwhile.
    async fn park(&mut self) -> Option<Box<WebSocket>> {
        if !self.joined || self.token.is_none() {
            return None;
        }
        debug!(id = self.id, "connection lost; waiting to be resumed");
        let deadline = tokio::time::sleep(self.resumes.grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return None,
                new = takeover(&mut self.token) => return Some(new),
                out = self.rx.recv() => {
                    // Nobody to tell: the resumed connection hears the state afresh.
                    out.as_ref()?;
                }
            }
        }
    }

    /// A new connection took the participant over: the engine sends its messages there
    /// from now on, starting with a fresh `joined`. False when the engine has stopped.
    async fn resume(&mut self) -> bool {
        let (tx, rx) = mpsc::channel::<ServerMsg>(SESSION_QUEUE);
        // The reading rate's budget stays the participant's: a new connection does not
        // refill it.
        self.rx = rx;
        debug!(id = self.id, "resumed on a new connection");
        self.engine.send(Command::Resume { id: self.id, tx }).await
    }
}

/// The next connection that resumes the participant; never, without a token.
async fn takeover(token: &mut Option<(String, mpsc::Receiver<Box<WebSocket>>)>) -> Box<WebSocket> {
    match token {
        Some((_, rx)) => match rx.recv().await {
            Some(ws) => ws,
            // The map holds the sender for as long as this session has the token.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

async fn reply(ws: &mut WebSocket, msg: ServerMsg) -> Result<(), &'static str> {
    let text = serde_json::to_string(&msg).expect("server messages serialize");
    send(ws, Message::Text(text.into())).await
}

/// Writes one message; the reason to end the session when the connection is gone or
/// the client has not taken it within [`SEND_TIMEOUT`].
async fn send(ws: &mut WebSocket, m: Message) -> Result<(), &'static str> {
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(m)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("disconnected"),
        Err(_) => Err(NOT_READING),
    }
}
