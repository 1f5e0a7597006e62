//! Starting the engine: the worker threads with their shards and lanes, and the
//! receive task (or, with one worker, the worker reading the sockets itself).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::EngineHandle;
use crate::sfu::lanes;
use crate::sfu::receive;
use crate::sfu::registry::{Quotas, Registry};
use crate::sfu::shard::{Shard, ShardConfig, MAX_WORKERS};
use crate::sfu::udp::UdpIo;
use crate::sfu::worker::{self, ToReceive, WorkerLanes};

/// The media sockets plus the address rules for them.
pub(crate) struct MediaSockets {
    pub(crate) sockets: Vec<UdpIo>,
    pub(crate) candidates: Vec<SocketAddr>,
    /// Passive ICE-TCP candidates (the HTTPS port); empty when TCP media is off.
    pub(crate) tcp_candidates: Vec<SocketAddr>,
}

/// Room limits and access rules.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub room_capacity: usize,
    pub viewer_capacity: usize,
    pub room_tokens: HashMap<String, String>,
    /// The operator's token, which also makes its holder a room's host.
    pub operator_token: Option<String>,
    /// Viewers of one room its own worker serves before further viewers go to other
    /// workers (see [`super::registry`]).
    pub spread_viewers_after: usize,
    /// How long a media session may take to connect.
    pub connect_timeout: std::time::Duration,
    /// Direct-call signals per second per participant.
    pub direct_rate: u32,
    /// The chat's limits, and whether viewers may write.
    pub chat: crate::chat::ChatLimits,
    /// Rooms that may exist at once, server-wide.
    pub max_rooms: usize,
    /// Participants, viewers and WHIP/WHEP sessions at once, server-wide.
    pub max_sessions: usize,
    /// Sessions from one client address at once.
    pub max_per_address: usize,
    /// Sessions one client address may open per minute.
    pub joins_per_minute: u32,
    /// Where recordings go (`None`: recording is off).
    pub record: Option<crate::record::RecordSink>,
    /// Estimate the bandwidth towards each receiver (`--no-bandwidth-estimation`).
    pub bandwidth_estimation: bool,
}

/// Starts `workers` media worker threads (at least one) and the receive task (on the
/// current tokio runtime, or with one worker on its thread). The engine runs until
/// every [`EngineHandle`] is dropped.
pub(crate) fn spawn(
    media: MediaSockets,
    limits: Limits,
    workers: usize,
) -> std::io::Result<EngineHandle> {
    let n = workers.clamp(1, MAX_WORKERS);
    let registry = Arc::new(Registry::with_limits(
        n,
        limits.spread_viewers_after,
        Quotas {
            max_rooms: limits.max_rooms,
            max_sessions: limits.max_sessions,
            max_per_address: limits.max_per_address,
            joins_per_minute: limits.joins_per_minute,
        },
    ));
    let (link_txs, link_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
    let links = Arc::new(lanes::Links::new(link_txs));
    let (cluster_tx, cluster_rx) = mpsc::unbounded_channel();
    let (route_tx, route_rx) = mpsc::channel(lanes::ROUTE_QUEUE);
    let (recycle_tx, recycle_rx) = mpsc::channel(lanes::SPARE_BATCHES);
    let mut control = Vec::with_capacity(n);
    let mut media_txs = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    for (index, link_rx) in link_rxs.into_iter().enumerate() {
        let (control_tx, control_rx) = mpsc::channel(lanes::CONTROL_QUEUE);
        let (media_tx, media_rx) = lanes::media_lane();
        let shard = Shard::new(ShardConfig {
            candidates: media.candidates.clone(),
            tcp_candidates: media.tcp_candidates.clone(),
            room_capacity: limits.room_capacity,
            viewer_capacity: limits.viewer_capacity,
            room_tokens: limits.room_tokens.clone(),
            operator_token: limits.operator_token.clone(),
            worker: index,
            seed: rand::random(),
            connect_timeout: limits.connect_timeout,
            direct_rate: limits.direct_rate,
            chat: limits.chat,
            record: limits.record.clone(),
            bandwidth_estimation: limits.bandwidth_estimation,
        });
        let senders = media
            .sockets
            .iter()
            .map(UdpIo::sender)
            .collect::<std::io::Result<Vec<_>>>()?;
        let shell = worker::Worker::new(
            index,
            senders,
            media.candidates.clone(),
            registry.clone(),
            links.clone(),
            ToReceive {
                recycle: recycle_tx.clone(),
                routes: Some(route_tx.clone()),
            },
            cluster_tx.clone(),
            media_tx.clone(),
        );
        let lanes = WorkerLanes {
            control: control_rx,
            media: media_rx,
            links: link_rx,
        };
        starts.push((shell, shard, lanes));
        control.push(control_tx);
        media_txs.push(media_tx);
    }
    let counters = Arc::new(receive::ReceiveCounters::new(n));
    let tcp_media = media_txs.clone();
    let task = receive::Task {
        sockets: media.sockets,
        candidates: media.candidates,
        lanes: receive::Lanes {
            media: media_txs,
            routes: route_rx,
            recycle: recycle_rx,
        },
        counters: counters.clone(),
    };
    // One worker reads the media socket itself: no routing table, no copy into a
    // batch and no hand-off per read. With several, a task of its own reads for all of
    // them, so none waits for another's work to have its datagrams read.
    let mut inline = if n == 1 {
        Some(task)
    } else {
        tokio::spawn(task.run());
        None
    };
    for (index, (shell, shard, lanes)) in starts.into_iter().enumerate() {
        let inline = inline.take();
        std::thread::Builder::new()
            .name(format!("media-{index}"))
            .spawn(move || worker::run(shell, shard, lanes, inline))?;
    }
    Ok(EngineHandle {
        control,
        media: tcp_media,
        registry,
        receive: counters,
        control_drops: Arc::new(AtomicU64::new(0)),
        links,
        cluster: Arc::new(OnceLock::new()),
        to_cluster: Arc::new(std::sync::Mutex::new(Some(cluster_rx))),
    })
}
