//! One WebSocket connection: parses the browser's messages, checks them, hands them to
//! the media engine, and writes the engine's messages back. Detects a browser that
//! vanished without closing (no answer to pings) and tells the engine it left.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::protocol::{ClientMsg, ErrorCode, PeerId, ServerMsg, MAX_MESSAGE_BYTES};
use crate::sfu::engine::{self, Command, EngineHandle, SESSION_QUEUE};

/// How often the server pings an idle browser.
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A browser silent for this long (no message, no pong) is considered gone.
pub(crate) const SILENCE_TIMEOUT: Duration = Duration::from_secs(12);

/// Serves one WebSocket until it closes.
pub(crate) async fn run(mut ws: WebSocket, engine: EngineHandle) {
    let id: PeerId = engine::next_peer_id();
    let (tx, mut rx) = mpsc::channel::<ServerMsg>(SESSION_QUEUE);
    let mut tx = Some(tx);
    let mut joined = false;
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reason: &'static str = loop {
        tokio::select! {
            incoming = ws.recv() => {
                let Some(Ok(message)) = incoming else { break "disconnected" };
                last_heard = Instant::now();
                let text = match message {
                    Message::Text(t) => t,
                    Message::Close(_) => break "left",
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Binary(_) => {
                        if !reply(&mut ws, ServerMsg::error(ErrorCode::BadMessage, "binary messages are not part of the protocol")).await {
                            break "disconnected";
                        }
                        continue;
                    }
                };
                if text.len() > MAX_MESSAGE_BYTES {
                    let msg = ServerMsg::error(ErrorCode::TooLarge, format!("message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}", text.len()));
                    if !reply(&mut ws, msg).await { break "disconnected" }
                    continue;
                }
                let msg = match serde_json::from_str::<ClientMsg>(text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        let msg = ServerMsg::error(ErrorCode::BadMessage, format!("not a valid message: {e}"));
                        if !reply(&mut ws, msg).await { break "disconnected" }
                        continue;
                    }
                };
                let cmd = match msg {
                    ClientMsg::Join { room, name, role, mode, token } if !joined => {
                        joined = true;
                        let Some(tx) = tx.take() else { break "error" };
                        Command::Join { id, room, name, role, mode, token, tx }
                    }
                    ClientMsg::Join { .. } => {
                        if !reply(&mut ws, ServerMsg::error(ErrorCode::BadState, "already joined")).await { break "disconnected" }
                        continue;
                    }
                    ClientMsg::Leave => break "left",
                    _ if !joined => {
                        if !reply(&mut ws, ServerMsg::error(ErrorCode::BadState, "join a room first")).await { break "disconnected" }
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
                if !reply(&mut ws, msg).await { break "disconnected" }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENCE_TIMEOUT {
                    break "timeout";
                }
                if ws.send(Message::Ping(Default::default())).await.is_err() {
                    break "disconnected";
                }
            }
        }
    };
    debug!(id, reason, "session ended");
    if joined {
        engine.send(Command::Leave { id, reason }).await;
        // Deliver what the engine said last (e.g. why the join was refused).
        while let Ok(msg) = rx.try_recv() {
            if !reply(&mut ws, msg).await {
                break;
            }
        }
    }
    let _ = ws.send(Message::Close(None)).await;
}

async fn reply(ws: &mut WebSocket, msg: ServerMsg) -> bool {
    let text = serde_json::to_string(&msg).expect("server messages serialize");
    ws.send(Message::Text(text.into())).await.is_ok()
}
