//! The cluster's task, bound to this node's media engine: it connects to NATS,
//! refreshes this node's heartbeat with its load, gives back the entries of rooms that
//! closed here, and carries messages between the media workers and other nodes
//! ([`super::wire::Bridge`]). [`start`] makes the [`Cluster`] handle and spawns it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::nats::{self, Nats};
use super::placement::NodeLoad;
use super::{wire, Cluster, ClusterConfig, Counters, Inner, State, Task, CLAIM_GRACE};
use crate::sfu::engine::EngineHandle;
use crate::sfu::link::LinkMsg;

/// Starts the cluster task: connects to NATS (in the background: the node serves its
/// own rooms meanwhile), then heartbeats and carries messages. `from_workers`: what
/// this node's media workers send to other nodes (the remote index they named, and
/// the message).
pub fn start(
    cfg: ClusterConfig,
    engine: EngineHandle,
    from_workers: mpsc::UnboundedReceiver<(usize, LinkMsg)>,
) -> (Cluster, Task) {
    let (nats_tx, nats_rx) = watch::channel(None);
    let cluster = Cluster {
        inner: Arc::new(Inner {
            cfg,
            nats: nats_rx,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
        }),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run(cluster.clone(), engine, nats_tx, from_workers, stopped));
    (cluster, Task { stop, task })
}

/// The task: connect, then heartbeats, room releases and messages until stopped.
async fn run(
    cluster: Cluster,
    engine: EngineHandle,
    nats_tx: watch::Sender<Option<Nats>>,
    mut from_workers: mpsc::UnboundedReceiver<(usize, LinkMsg)>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let cfg = cluster.inner.cfg.clone();
    let nats = tokio::select! {
        _ = &mut stopped => return,
        n = connect(&cfg) => n,
    };
    info!(node = cfg.node, nats = cfg.nats, "joined the cluster");
    let _ = nats_tx.send(Some(nats.clone()));
    let mut inbox = loop {
        match nats.client.subscribe(nats::node_subject(&cfg.node)).await {
            Ok(s) => break s,
            Err(e) => {
                warn!("cannot subscribe to this node's subject: {e}");
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut beat = tokio::time::interval(nats::HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let bridge = wire::Bridge::new(cluster.clone(), engine.clone());
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = beat.tick() => heartbeat(&cluster, &nats, &engine).await,
            Some(m) = inbox.next() => {
                cluster.inner.counters.received.fetch_add(1, Ordering::Relaxed);
                if let Some((to, payload)) = bridge.incoming(&m.payload) {
                    let _ = nats.send(&to, payload).await;
                }
            }
            Some((to, msg)) = from_workers.recv() => {
                if let Some((to, payload)) = bridge.outgoing(to, msg) {
                    cluster.inner.counters.sent.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = nats.send(&to, payload).await {
                        debug!(to, "message to another node lost: {e}");
                    }
                }
            }
        }
    }
    // The others need not wait for this node's entry to expire.
    let _ = nats.leave(&cfg.node).await;
    let owned: Vec<(String, u64)> = cluster
        .state()
        .owned
        .drain()
        .map(|(r, (rev, _))| (r, rev))
        .collect();
    for (room, rev) in owned {
        let _ = nats.release(&room, rev).await;
    }
    let _ = nats.client.flush().await;
}

/// Refreshes this node's entry, reads the others', and gives back the entries of
/// rooms that closed here.
async fn heartbeat(cluster: &Cluster, nats: &Nats, engine: &EngineHandle) {
    let load = load(cluster, engine).await;
    let ok = nats.heartbeat(&load).await.is_ok();
    let nodes = if ok { nats.nodes().await.ok() } else { None };
    let connected = nodes.is_some();
    if !connected {
        cluster
            .inner
            .counters
            .heartbeat_failures
            .fetch_add(1, Ordering::Relaxed);
    }
    let closed: Vec<(String, u64)> = {
        let mut s = cluster.state();
        if s.connected != connected {
            if connected {
                info!("NATS reachable again");
            } else {
                warn!("NATS unreachable: rooms here carry on; new cross-node placement waits");
            }
        }
        s.connected = connected;
        if let Some(n) = nodes {
            s.nodes = n;
        }
        let gone: Vec<String> = s
            .owned
            .iter()
            .filter(|(room, (_, since))| since.elapsed() > CLAIM_GRACE && !engine.room_open(room))
            .map(|(room, _)| room.clone())
            .collect();
        s.edge_of.retain(|room, _| engine.room_open(room));
        gone.into_iter()
            .filter_map(|r| s.owned.remove(&r).map(|(rev, _)| (r, rev)))
            .collect()
    };
    for (room, rev) in closed {
        match nats.release(&room, rev).await {
            Ok(()) => debug!(room, "room closed: its entry is given back"),
            Err(e) => debug!(room, "room closed; its entry stays: {e}"),
        }
    }
}

/// This node's entry in the nodes bucket.
async fn load(cluster: &Cluster, engine: &EngineHandle) -> NodeLoad {
    let (participants, viewers) = engine.session_counts();
    let status = engine.status().await.unwrap_or_default();
    let now = Instant::now();
    let bytes = status.forwarded_bytes + status.relayed_bytes;
    let busy: Vec<f64> = status.workers.iter().map(|w| w.busy_seconds).collect();
    let (cpu, egress_bps) = {
        let mut s = cluster.state();
        let rates = match &s.last {
            Some((at, b, was)) => {
                let secs = now.duration_since(*at).as_secs_f64().max(0.001);
                let cpu = busy
                    .iter()
                    .zip(was)
                    .map(|(n, w)| (n - w) / secs)
                    .fold(0.0_f64, f64::max)
                    .clamp(0.0, 1.0);
                (cpu, (bytes.saturating_sub(*b) as f64 * 8.0 / secs) as u64)
            }
            None => (0.0, 0),
        };
        s.last = Some((now, bytes, busy));
        rates
    };
    NodeLoad {
        name: cluster.inner.cfg.node.clone(),
        url: cluster.inner.cfg.url.clone(),
        viewers,
        participants,
        links: status.relay_links,
        cpu,
        egress_bps,
    }
}

/// Connects to NATS, retrying until it answers.
async fn connect(cfg: &ClusterConfig) -> Nats {
    let mut wait = Duration::from_millis(250);
    loop {
        match Nats::connect(&cfg.nats, &cfg.node).await {
            Ok(n) => return n,
            Err(e) => {
                warn!(nats = cfg.nats, "cannot reach NATS ({e}); retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}
