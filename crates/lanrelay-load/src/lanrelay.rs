//! Joining a lanrelay server as a participant: WSS `join` (mode `relay`; role `viewer`
//! for one who only receives, as a browser opening a watch link does), `joined`, the
//! participant's `offer` and the server's `answer`; the WebSocket then goes to the
//! participant's task, which answers the server's renegotiation `offer`s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::client::{connect_ws, Ws};
use super::peer::{Control, Media, Outcome, Shared, Spec};
use super::LoadError;
use lanrelay::signaling::protocol::{ClientMsg, Mode, Role, ServerMsg};

/// Joins `room` at `base` (`https://HOST:PORT`) and negotiates; returns the running
/// participant's task.
pub async fn join(
    base: &str,
    tls: &Arc<rustls::ClientConfig>,
    room: &str,
    spec: Spec,
    shared: Shared,
) -> Result<tokio::task::JoinHandle<Outcome>, LoadError> {
    join_controlled(base, tls, room, spec, shared, None).await
}

/// [`join`] a participant that also takes orders from `control`.
pub async fn join_controlled(
    base: &str,
    tls: &Arc<rustls::ClientConfig>,
    room: &str,
    spec: Spec,
    shared: Shared,
    control: Option<tokio::sync::mpsc::UnboundedReceiver<Control>>,
) -> Result<tokio::task::JoinHandle<Outcome>, LoadError> {
    let joined_at = Instant::now();
    let mut base = base.to_string();
    // A node of a cluster may send the participant to another node (`redirect`), as
    // the page follows it.
    let mut hops = 0;
    let mut ws = 'join: loop {
        let mut ws = connect_ws(&base, tls).await?;
        send(
            &mut ws,
            &ClientMsg::Join {
                room: room.into(),
                name: spec.name.clone(),
                role: match spec.publish {
                    Some(_) => Role::Participant,
                    None => Role::Viewer,
                },
                mode: Mode::Relay,
                token: None,
                host_token: None,
            },
        )
        .await?;
        loop {
            match recv(&mut ws).await? {
                ServerMsg::Joined { .. } => break 'join ws,
                ServerMsg::Redirect { url } if hops < 3 => {
                    hops += 1;
                    base = url;
                    continue 'join;
                }
                ServerMsg::Error { code, message } => {
                    return Err(LoadError::Signaling(format!("join: {code:?}: {message}")))
                }
                _ => continue,
            }
        }
    };
    let mut media = Media::new(spec, shared).await?;
    media.set_joined_at(joined_at);
    let sdp = media.offer(true)?;
    send(&mut ws, &ClientMsg::Offer { sdp }).await?;
    // The answer comes first; server offers may follow and are handled by the task.
    loop {
        match recv(&mut ws).await? {
            ServerMsg::Answer { sdp } => {
                media.accept_answer(&sdp)?;
                break;
            }
            ServerMsg::Error { code, message } => {
                return Err(LoadError::Signaling(format!("offer: {code:?}: {message}")))
            }
            _ => continue,
        }
    }
    Ok(tokio::spawn(media.run_controlled(Some(ws), control)))
}

async fn send(ws: &mut Ws, msg: &ClientMsg) -> Result<(), LoadError> {
    let text = serde_json::to_string(msg).map_err(|e| LoadError::Signaling(e.to_string()))?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| LoadError::Signaling(e.to_string()))
}

/// The next protocol message (pings skipped), within 30 s.
async fn recv(ws: &mut Ws) -> Result<ServerMsg, LoadError> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| LoadError::Signaling("no message from the server in 30 s".into()))?;
        match m {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(t.as_str())
                    .map_err(|e| LoadError::Signaling(format!("bad server message: {e}")))
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(LoadError::Signaling("server closed the WebSocket".into()))
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(LoadError::Signaling(e.to_string())),
        }
    }
}
