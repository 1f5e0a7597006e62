//! What the cluster keeps in NATS, and how it is read and written: two JetStream
//! key-value buckets and one subject per node.
//!
//! - `lanrelay-rooms`: room → origin node. Written create-only when a node opens a
//!   room, so two nodes racing for the same room cannot both win; a dead origin's entry
//!   is replaced by compare-and-swap on its revision; the origin deletes it (again on
//!   its revision) when the room closes.
//! - `lanrelay-nodes`: node name → [`NodeLoad`] (URL and load), put every
//!   [`HEARTBEAT`]; the bucket's age limit ([`NODE_TTL`]) drops the entry of a node
//!   that stops refreshing it.
//! - `lanrelay.node.NAME`: messages for node NAME from other nodes (JSON
//!   [`super::wire::Envelope`]s), in order per sender.
//!
//! Keys: NATS allows `[-/_=.A-Za-z0-9]` in keys, so a room's key is its name in
//! URL-safe base64 (`r.` + base64url, no padding).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;

use super::placement::{NodeLoad, RoomEntry};

/// How often a node refreshes its entry.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node entry not refreshed for this long expires (the node is gone).
pub const NODE_TTL: Duration = Duration::from_secs(8);

/// A node whose entry is this much older than the newest node entry counts as gone
/// (it missed two heartbeats).
const STALE: time::Duration = time::Duration::milliseconds(4500);

/// How long one NATS operation may take before the cluster counts as unreachable.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

const ROOMS: &str = "lanrelay-rooms";
const NODES: &str = "lanrelay-nodes";

/// Why a NATS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS did not answer within {OP_TIMEOUT:?}")]
    Timeout,
    #[error("NATS: {0}")]
    Nats(String),
}

fn err(e: impl std::fmt::Display) -> NatsError {
    NatsError::Nats(e.to_string())
}

/// The result of a create-only or compare-and-swap write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The write won: this node is the room's origin.
    Won,
    /// Another node wrote first.
    Lost,
}

/// The client and its two buckets.
#[derive(Clone)]
pub struct Nats {
    pub client: async_nats::Client,
    rooms: kv::Store,
    nodes: kv::Store,
}

/// The subject a node's messages are published to.
pub fn node_subject(node: &str) -> String {
    format!("lanrelay.node.{node}")
}

/// A room's key in the rooms bucket.
pub fn room_key(room: &str) -> String {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(room.as_bytes());
    format!("r.{b}")
}

async fn timed<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, NatsError> {
    match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(r) => r.map_err(err),
        Err(_) => Err(NatsError::Timeout),
    }
}

impl Nats {
    /// Connects (retrying in the background if NATS is not up yet) and opens or
    /// creates the buckets.
    pub async fn connect(url: &str, node: &str) -> Result<Nats, NatsError> {
        let client = async_nats::ConnectOptions::new()
            .name(format!("lanrelay {node}"))
            .retry_on_initial_connect()
            .connection_timeout(OP_TIMEOUT)
            .request_timeout(Some(OP_TIMEOUT))
            .connect(url)
            .await
            .map_err(err)?;
        let js = jetstream::new(client.clone());
        let rooms = bucket(&js, ROOMS, Duration::ZERO).await?;
        let nodes = bucket(&js, NODES, NODE_TTL).await?;
        Ok(Nats {
            client,
            rooms,
            nodes,
        })
    }

    /// The room's entry, if any node holds it.
    pub async fn room(&self, room: &str) -> Result<Option<RoomEntry>, NatsError> {
        let e = timed(self.rooms.entry(room_key(room))).await?;
        Ok(e.and_then(|e| {
            if e.operation != kv::Operation::Put {
                return None;
            }
            let origin = String::from_utf8(e.value.to_vec()).ok()?;
            Some(RoomEntry {
                origin,
                revision: e.revision,
            })
        }))
    }

    /// Writes `me` as the room's origin: create-only (`revision` `None`) or replacing
    /// the entry at `revision`.
    pub async fn claim(
        &self,
        room: &str,
        me: &str,
        revision: Option<u64>,
    ) -> Result<(Claim, u64), NatsError> {
        let key = room_key(room);
        let value = Bytes::from(me.to_string());
        match revision {
            None => match tokio::time::timeout(OP_TIMEOUT, self.rooms.create(&key, value)).await {
                Err(_) => Err(NatsError::Timeout),
                Ok(Ok(rev)) => Ok((Claim::Won, rev)),
                Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    Ok((Claim::Lost, 0))
                }
                Ok(Err(e)) => Err(err(e)),
            },
            Some(rev) => {
                match tokio::time::timeout(OP_TIMEOUT, self.rooms.update(&key, value, rev)).await {
                    Err(_) => Err(NatsError::Timeout),
                    Ok(Ok(rev)) => Ok((Claim::Won, rev)),
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        Ok((Claim::Lost, 0))
                    }
                    Ok(Err(e)) => Err(err(e)),
                }
            }
        }
    }

    /// Deletes the room's entry if it is still the one written at `revision`.
    pub async fn release(&self, room: &str, revision: u64) -> Result<(), NatsError> {
        timed(
            self.rooms
                .delete_expect_revision(room_key(room), Some(revision)),
        )
        .await
    }

    /// Refreshes this node's entry.
    pub async fn heartbeat(&self, load: &NodeLoad) -> Result<(), NatsError> {
        let value = serde_json::to_vec(load).map_err(err)?;
        timed(self.nodes.put(&load.name, value.into())).await?;
        Ok(())
    }

    /// Removes this node's entry (at shutdown: the others need not wait for it to
    /// expire).
    pub async fn leave(&self, node: &str) -> Result<(), NatsError> {
        timed(self.nodes.delete(node)).await
    }

    /// The live nodes.
    pub async fn nodes(&self) -> Result<Vec<NodeLoad>, NatsError> {
        let read = async {
            let mut keys = self.nodes.keys().await.map_err(err)?;
            let mut names = Vec::new();
            while let Some(k) = keys.next().await {
                names.push(k.map_err(err)?);
            }
            let mut entries = Vec::new();
            for name in names {
                if let Some(e) = self.nodes.entry(name).await.map_err(err)? {
                    if e.operation != kv::Operation::Put {
                        continue;
                    }
                    if let Ok(n) = serde_json::from_slice::<NodeLoad>(&e.value) {
                        entries.push((e.created, n));
                    }
                }
            }
            // A node whose last heartbeat is well behind the newest one stopped: it
            // drops out now rather than when its entry expires (the times are the NATS
            // server's, so the nodes' clocks need not agree).
            let newest = entries.iter().map(|(t, _)| *t).max();
            let out = entries
                .into_iter()
                .filter(|(t, _)| newest.is_some_and(|n| n - *t <= STALE))
                .map(|(_, n)| n)
                .collect();
            Ok::<_, NatsError>(out)
        };
        match tokio::time::timeout(OP_TIMEOUT, read).await {
            Ok(r) => r,
            Err(_) => Err(NatsError::Timeout),
        }
    }

    /// Sends `payload` to node `to`.
    pub async fn send(&self, to: &str, payload: Vec<u8>) -> Result<(), NatsError> {
        timed(self.client.publish(node_subject(to), payload.into())).await
    }
}

/// Opens the bucket, creating it if it does not exist. `max_age` zero: entries never
/// expire.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<kv::Store, NatsError> {
    if let Ok(Ok(s)) = tokio::time::timeout(OP_TIMEOUT, js.get_key_value(name)).await {
        return Ok(s);
    }
    let config = kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_age,
        ..Default::default()
    };
    match timed(js.create_key_value(config)).await {
        Ok(s) => Ok(s),
        // Another node created it meanwhile.
        Err(e) => timed(js.get_key_value(name))
            .await
            .map_err(|_| NatsError::Nats(format!("cannot create the bucket {name}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keys_are_valid_nats_keys_and_distinct() {
        let names = ["class 4B", "会议室", "a.b", "a/b", "x*", "x>"];
        let keys: Vec<String> = names.iter().map(|n| room_key(n)).collect();
        for k in &keys {
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c)),
                "{k}"
            );
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }
}
