//! One WebSocket connection: parses the browser's messages, checks them, hands them to
//! the media engine, and writes the engine's messages back. Detects a browser that
//! vanished without closing (no answer to pings) and tells the engine it left.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::protocol::{ClientMsg, ErrorCode, PeerId, ServerMsg, MAX_MESSAGE_BYTES};
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

/// Serves one WebSocket until it closes.
/// `from`: the client's address, for the limits per address.
pub(crate) async fn run(
    mut ws: WebSocket,
    engine: EngineHandle,
    from: Option<IpAddr>,
    limit: ReadLimit,
) {
    let id: PeerId = engine::next_peer_id();
    let mut pace = Pace::new(limit.bytes_per_sec, READ_BURST);
    // While set, the connection is not read until then.
    let mut paused: Option<Instant> = None;
    let (tx, mut rx) = mpsc::channel::<ServerMsg>(SESSION_QUEUE);
    let mut tx = Some(tx);
    let mut joined = false;
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason: &'static str = loop {
        tokio::select! {
            incoming = ws.recv(), if paused.is_none() => {
                let Some(Ok(message)) = incoming else { break "disconnected" };
                last_heard = Instant::now();
                let size = match &message {
                    Message::Text(t) => t.len(),
                    Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
                    Message::Close(_) => 0,
                };
                let cost = size.max(MIN_MESSAGE_COST) as f64;
                if let Some(until) = pace.charge(cost, last_heard.into_std()) {
                    paused = Some(until.into());
                    limit.throttled.fetch_add(1, Ordering::Relaxed);
                    let msg = ServerMsg::error(ErrorCode::RateLimited, format!(
                        "you are sending more than {} KiB of messages a second; the server reads them more slowly",
                        (limit.bytes_per_sec / 1024.0).round()
                    ));
                    if let Err(why) = reply(&mut ws, msg).await { break why }
                }
                let text = match message {
                    Message::Text(t) => t,
                    Message::Close(_) => break "left",
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Binary(_) => {
                        if let Err(why) = reply(&mut ws, ServerMsg::error(ErrorCode::BadMessage, "binary messages are not part of the protocol")).await {
                            break why;
                        }
                        continue;
                    }
                };
                if text.len() > MAX_MESSAGE_BYTES {
                    let msg = ServerMsg::error(ErrorCode::TooLarge, format!("message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}", text.len()));
                    if let Err(why) = reply(&mut ws, msg).await { break why }
                    continue;
                }
                let msg = match serde_json::from_str::<ClientMsg>(text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        let msg = ServerMsg::error(ErrorCode::BadMessage, format!("not a valid message: {e}"));
                        if let Err(why) = reply(&mut ws, msg).await { break why }
                        continue;
                    }
                };
                let cmd = match msg {
                    ClientMsg::Join { room, name, role, mode, token } if !joined => {
                        joined = true;
                        let Some(tx) = tx.take() else { break "error" };
                        Command::Join { id, room, name, role, mode, token, tx, from }
                    }
                    ClientMsg::Join { .. } => {
                        if let Err(why) = reply(&mut ws, ServerMsg::error(ErrorCode::BadState, "already joined")).await { break why }
                        continue;
                    }
                    ClientMsg::Leave => break "left",
                    _ if !joined => {
                        if let Err(why) = reply(&mut ws, ServerMsg::error(ErrorCode::BadState, "join a room first")).await { break why }
                        continue;
                    }
                    msg => Command::Signal { id, msg },
                };
                if !engine.send(cmd).await {
                    let _ = reply(&mut ws, engine::unavailable()).await;
                    break "error";
                }
            }
            out = rx.recv(), if joined => {
                // The engine dropped our channel: we were removed (room full, failure).
                let Some(msg) = out else { break "closed" };
                if let Err(why) = reply(&mut ws, msg).await { break why }
            }
            _ = tokio::time::sleep_until(paused.unwrap_or_else(Instant::now)), if paused.is_some() => {
                paused = None;
                // Not silent: it was the server that did not listen.
                last_heard = Instant::now();
            }
            _ = ping.tick() => {
                if paused.is_none() && last_heard.elapsed() > SILENCE_TIMEOUT {
                    break "timeout";
                }
                if let Err(why) = send(&mut ws, Message::Ping(Default::default())).await {
                    break why;
                }
            }
        }
    };
    debug!(id, reason, "session ended");
    if joined {
        engine.send(Command::Leave { id, reason }).await;
        // Deliver what the engine said last (e.g. why the join was refused).
        while let Ok(msg) = rx.try_recv() {
            if reply(&mut ws, msg).await.is_err() {
                break;
            }
        }
    }
    let _ = send(&mut ws, Message::Close(None)).await;
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
        Err(_) => Err("not reading"),
    }
}
