//! The engine's requests that ask its workers and gather their answers: status, the
//! rooms, recordings, WHIP/WHEP sessions and their resources.

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::EngineHandle;
use crate::sfu::ids::next_peer_id;
use crate::sfu::lanes::{Command, Control};
use crate::sfu::shard::{HttpAnswer, RecordError, RoomSnapshot};
use crate::sfu::status::Status;
use crate::signaling::protocol::ErrorCode;

impl EngineHandle {
    /// Asks every worker; their answers in worker order.
    async fn ask_all<T>(&self, make: impl Fn(oneshot::Sender<T>) -> Control) -> Option<Vec<T>> {
        let mut replies = Vec::with_capacity(self.control.len());
        for w in &self.control {
            let (reply, rx) = oneshot::channel();
            w.send(make(reply)).await.ok()?;
            replies.push(rx);
        }
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            out.push(rx.await.ok()?);
        }
        Some(out)
    }

    pub async fn status(&self) -> Option<Status> {
        let reports = self.ask_all(|reply| Control::Status { reply }).await?;
        let refused = self.registry.refused();
        let mut status = Status {
            refused_rooms: refused.rooms,
            refused_sessions: refused.sessions,
            refused_per_address: refused.per_address,
            refused_rate: refused.rate,
            unroutable_datagrams: self.receive.unroutable(),
            stun_refused: self.receive.stun_refused(),
            control_drops: self.control_drops.load(Ordering::Relaxed),
            ..Status::default()
        };
        for r in &reports {
            status.add(r);
        }
        for (w, queue_drops) in status.workers.iter_mut().zip(self.receive.queue_drops()) {
            w.queue_drops = queue_drops;
        }
        // Packets one worker passed to another for a spread room and dropped because
        // the other was too far behind count as the other's queue drops.
        for r in &reports {
            for (w, drops) in status.workers.iter_mut().zip(&r.link_drops) {
                w.queue_drops += drops;
            }
        }
        Some(status)
    }

    /// Starts a WHIP (`whep` false) or WHEP session; `edge`: a WHEP player of a room
    /// whose origin is another node ([`Place::Edge`](crate::cluster::Place::Edge)).
    pub async fn http_session(
        &self,
        whep: bool,
        room: String,
        token: Option<String>,
        offer: String,
        from: Option<std::net::IpAddr>,
        edge: bool,
    ) -> HttpAnswer {
        let (reply, rx) = oneshot::channel();
        let id = next_peer_id();
        let cmd = Command::HttpSession {
            whep,
            id,
            room,
            token,
            offer,
            reply,
            from,
            edge,
        };
        let unavailable = || {
            (
                ErrorCode::Unavailable,
                "the media engine is not running".to_string(),
            )
        };
        if !self.send(cmd).await {
            return Err(unavailable());
        }
        rx.await.map_err(|_| unavailable())?
    }

    /// Ends a WHIP/WHEP session; false when it does not exist.
    pub async fn end_resource(&self, resource: String) -> bool {
        let answers = self
            .ask_all(|reply| Control::EndResource {
                resource: resource.clone(),
                reply,
            })
            .await;
        answers.is_some_and(|a| a.into_iter().any(|ended| ended))
    }

    /// Whether a WHIP/WHEP session with this resource id exists.
    pub async fn has_resource(&self, resource: String) -> bool {
        let answers = self
            .ask_all(|reply| Control::HasResource {
                resource: resource.clone(),
                reply,
            })
            .await;
        answers.is_some_and(|a| a.into_iter().any(|here| here))
    }

    pub async fn rooms(&self) -> Option<Vec<RoomSnapshot>> {
        let per_worker = self.ask_all(|reply| Control::Rooms { reply }).await?;
        // A room whose viewers are spread over workers shows once, with everyone.
        let mut rooms: Vec<RoomSnapshot> = Vec::new();
        for room in per_worker.into_iter().flatten() {
            match rooms.iter_mut().find(|r| r.name == room.name) {
                Some(r) => {
                    r.participants.extend(room.participants);
                    r.viewers.extend(room.viewers);
                    r.comparison = r.comparison.take().or(room.comparison);
                    r.edges.extend(room.edges);
                    // The home knows the host and the lock; mirrors know neither.
                    r.host = r.host.or(room.host);
                    r.locked |= room.locked;
                    r.recording |= room.recording;
                }
                None => rooms.push(room),
            }
        }
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        Some(rooms)
    }

    /// Starts (`on`) or stops recording `room`; `Ok(false)` when it already was (or
    /// was not). `message`: why a recording stopped by itself, for the room.
    pub async fn recording(
        &self,
        room: &str,
        on: bool,
        message: Option<String>,
    ) -> Result<bool, RecordError> {
        let Some(home) = self.registry.home_of(room.trim()) else {
            return Err(RecordError::NoRoom);
        };
        let (reply, rx) = oneshot::channel();
        let msg = Control::Recording {
            room: room.trim().to_string(),
            on,
            message,
            reply,
        };
        if self.control[home].send(msg).await.is_err() {
            return Err(RecordError::Off);
        }
        rx.await.unwrap_or(Err(RecordError::Off))
    }

    /// Stops every recording (the server is shutting down); how many there were.
    pub async fn stop_recordings(&self) -> usize {
        self.ask_all(|reply| Control::StopRecordings { reply })
            .await
            .map_or(0, |n| n.into_iter().sum())
    }

    /// Participants per worker, as the registry counts them.
    pub fn worker_load(&self) -> Vec<usize> {
        self.registry.load()
    }
}
