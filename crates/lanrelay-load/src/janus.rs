//! Driving Janus's videoroom plugin through its HTTP API (Janus 1.x), so the same
//! participants can load Janus for a side-by-side comparison: one session for the
//! whole run, one handle per PeerConnection, events by long-poll GET (which also keeps
//! the session alive).
//!
//! Publisher: attach, `joinandconfigure` with the offer, the answer arrives as an
//! event. Subscriber: attach, `join` as subscriber to the room's feeds, Janus's offer
//! arrives as an event, `start` with the answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::client::request;
use super::peer::{Media, Outcome, Shared, Spec};
use super::LoadError;

/// A Janus session with its event pump.
pub struct Janus {
    base: String,
    session: u64,
    tls: Arc<rustls::ClientConfig>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    pump: tokio::task::JoinHandle<()>,
    next_tx: Mutex<u64>,
}

impl Janus {
    /// Creates a session at `base` (e.g. `http://127.0.0.1:8088/janus`).
    pub async fn connect(base: &str, tls: Arc<rustls::ClientConfig>) -> Result<Janus, LoadError> {
        let base = base.trim_end_matches('/').to_string();
        let r = post(
            &base,
            &json!({"janus": "create", "transaction": "create"}),
            &tls,
        )
        .await?;
        let session = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Janus(format!("create session: {r}")))?;
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Arc::default();
        let pump = tokio::spawn(pump(
            format!("{base}/{session}?maxev=50"),
            tls.clone(),
            waiting.clone(),
        ));
        Ok(Janus {
            base,
            session,
            tls,
            waiting,
            pump,
            next_tx: Mutex::new(0),
        })
    }

    fn transaction(&self) -> String {
        let mut n = self.next_tx.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        format!("t{}", *n)
    }

    /// Attaches a videoroom handle.
    pub async fn attach(&self) -> Result<u64, LoadError> {
        let body = json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": self.transaction()});
        let r = post(&format!("{}/{}", self.base, self.session), &body, &self.tls).await?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Janus(format!("attach: {r}")))
    }

    /// Sends a plugin message; returns the synchronous answer or, after an ack, the
    /// event that carries the same transaction (within 30 s).
    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<Value, LoadError> {
        let tx = self.transaction();
        let mut msg = json!({"janus": "message", "transaction": tx, "body": body});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let (done, wait) = oneshot::channel();
        self.lock().insert(tx.clone(), done);
        let url = format!("{}/{}/{}", self.base, self.session, handle);
        let r = match post(&url, &msg, &self.tls).await {
            Ok(r) => r,
            Err(e) => {
                self.lock().remove(&tx);
                return Err(e);
            }
        };
        match r["janus"].as_str() {
            Some("ack") => tokio::time::timeout(Duration::from_secs(30), wait)
                .await
                .map_err(|_| {
                    LoadError::Janus(format!("no event for {body_req}", body_req = msg["body"]))
                })?
                .map_err(|_| LoadError::Janus("event pump stopped".into())),
            Some("success") => {
                self.lock().remove(&tx);
                Ok(r)
            }
            _ => {
                self.lock().remove(&tx);
                Err(LoadError::Janus(format!("{}: {r}", msg["body"])))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates room `room` for VP8 and Opus with room for `publishers`.
    pub async fn create_room(&self, room: u64, publishers: usize) -> Result<(), LoadError> {
        let h = self.attach().await?;
        let r = self
            .message(
                h,
                json!({
                    "request": "create", "room": room, "publishers": publishers,
                    "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0,
                    "fir_freq": 0, "notify_joining": false, "is_private": false
                }),
                None,
            )
            .await?;
        let data = &r["plugindata"]["data"];
        if data["videoroom"] != "created" {
            return Err(LoadError::Janus(format!("create room: {data}")));
        }
        Ok(())
    }

    /// Joins `room` as a publisher; returns its feed id and the running task.
    pub async fn publish(
        &self,
        room: u64,
        spec: Spec,
        shared: Shared,
    ) -> Result<(u64, tokio::task::JoinHandle<Outcome>), LoadError> {
        let joined_at = Instant::now();
        let h = self.attach().await?;
        let mut media = Media::new(spec.clone(), shared).await?;
        media.set_joined_at(joined_at);
        let offer = media.offer(false)?;
        let r = self
            .message(
                h,
                json!({"request": "joinandconfigure", "room": room, "ptype": "publisher", "display": spec.name}),
                Some(json!({"type": "offer", "sdp": offer, "trickle": false})),
            )
            .await?;
        let data = &r["plugindata"]["data"];
        let feed = data["id"]
            .as_u64()
            .ok_or_else(|| LoadError::Janus(format!("publish: {data}")))?;
        let answer = r["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| LoadError::Janus(format!("publish: no answer in {r}")))?;
        media.accept_answer(answer)?;
        Ok((feed, tokio::spawn(media.run(None))))
    }

    /// Subscribes to `feeds` of `room` on one PeerConnection; returns the running task.
    pub async fn subscribe(
        &self,
        room: u64,
        feeds: &[u64],
        spec: Spec,
        shared: Shared,
    ) -> Result<tokio::task::JoinHandle<Outcome>, LoadError> {
        let joined_at = Instant::now();
        let h = self.attach().await?;
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        let r = self
            .message(
                h,
                json!({"request": "join", "room": room, "ptype": "subscriber", "streams": streams}),
                None,
            )
            .await?;
        let offer = r["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| LoadError::Janus(format!("subscribe: no offer in {r}")))?;
        let mut media = Media::new(spec, shared).await?;
        media.set_joined_at(joined_at);
        let answer = media.accept_offer(offer)?;
        let r = self
            .message(
                h,
                json!({"request": "start"}),
                Some(json!({"type": "answer", "sdp": answer, "trickle": false})),
            )
            .await?;
        let data = &r["plugindata"]["data"];
        if data["started"] != "ok" {
            return Err(LoadError::Janus(format!("start: {data}")));
        }
        Ok(tokio::spawn(media.run(None)))
    }

    /// Destroys the session (and with it every handle and PeerConnection).
    pub async fn close(self) {
        let body = json!({"janus": "destroy", "transaction": "destroy"});
        let _ = post(&format!("{}/{}", self.base, self.session), &body, &self.tls).await;
        self.pump.abort();
    }
}

async fn post(
    url: &str,
    body: &Value,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Value, LoadError> {
    let r = request(url, Some(&body.to_string()), tls).await?;
    if r.status != 200 {
        return Err(LoadError::Janus(format!(
            "HTTP {} from {url}: {}",
            r.status, r.body
        )));
    }
    serde_json::from_str(&r.body).map_err(|e| LoadError::Janus(format!("bad JSON from {url}: {e}")))
}

/// Long-polls the session's events and hands each to whoever waits for its transaction.
async fn pump(
    url: String,
    tls: Arc<rustls::ClientConfig>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
) {
    loop {
        let r = match request(&url, None, &tls).await {
            Ok(r) if r.status == 200 => r,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(v) = serde_json::from_str::<Value>(&r.body) else {
            continue;
        };
        let events = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        for e in events {
            let Some(tx) = e["transaction"].as_str() else {
                continue;
            };
            let waiter = waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(tx);
            if let Some(w) = waiter {
                let _ = w.send(e);
            }
        }
    }
}
