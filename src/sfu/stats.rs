//! Server-side measurements of one participant's relayed connection, folded from
//! str0m's stats events (`PeerStats` once a second, per-m-line ingress and egress
//! stats) into the [`LegStats`] the browser's comparison panel and `/api/rooms` show.
//! Sans-IO: it takes events and their timestamps, nothing else.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::collections::HashMap;
use std::time::Instant;

use str0m::media::{MediaKind, Mid};
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::signaling::protocol::LegStats;

#[derive(Debug, Default)]
pub(crate) struct StatsTracker {
    /// Media payload byte totals (received, sent) at the previous `PeerStats`.
    last: Option<(Instant, u64, u64)>,
    /// Latest jitter (ms) and NACK total of each up stream.
    ingress: HashMap<Mid, (Option<f64>, u64)>,
    /// Latest NACK and PLI totals of each down stream.
    egress: HashMap<Mid, (u64, u64)>,
    current: LegStats,
}

impl StatsTracker {
    /// Per-m-line stats of a stream received from the browser.
    pub(crate) fn on_ingress(&mut self, s: &MediaIngressStats, kind: Option<MediaKind>) {
        let clock = match kind {
            Some(MediaKind::Audio) => 48_000.0,
            _ => 90_000.0,
        };
        let jitter = (s.packets > 0).then(|| s.jitter as f64 * 1000.0 / clock);
        self.ingress.insert(s.mid, (jitter, s.nacks));
    }

    /// Per-m-line stats of a stream sent to the browser.
    pub(crate) fn on_egress(&mut self, s: &MediaEgressStats) {
        self.egress.insert(s.mid, (s.nacks, s.plis + s.firs));
    }

    /// Forgets a stream that no longer exists.
    pub(crate) fn forget(&mut self, mid: Mid) {
        self.ingress.remove(&mid);
        self.egress.remove(&mid);
    }

    /// The once-a-second peer stats: completes a measurement and returns it.
    pub(crate) fn on_peer(&mut self, s: &PeerStats) -> &LegStats {
        let (up_bps, down_bps) = match self.last {
            Some((t, rx, tx)) if s.timestamp > t => {
                let secs = (s.timestamp - t).as_secs_f64();
                (
                    s.bytes_rx.saturating_sub(rx) as f64 * 8.0 / secs,
                    s.bytes_tx.saturating_sub(tx) as f64 * 8.0 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        self.last = Some((s.timestamp, s.bytes_rx, s.bytes_tx));
        let pair = s.selected_candidate_pair.as_ref();
        self.current = LegStats {
            rtt_ms: s.rtt.map(|d| d.as_secs_f64() * 1000.0),
            up_bps,
            down_bps,
            up_loss: s.ingress_loss_fraction.map(f64::from),
            down_loss: s.egress_loss_fraction.map(f64::from),
            up_jitter_ms: self
                .ingress
                .values()
                .filter_map(|(j, _)| *j)
                .reduce(f64::max),
            up_nacks: self.ingress.values().map(|(_, n)| n).sum(),
            down_nacks: self.egress.values().map(|(n, _)| n).sum(),
            down_plis: self.egress.values().map(|(_, p)| p).sum(),
            local: pair.map(|p| p.local.addr.to_string()),
            remote: pair.map(|p| p.remote.addr.to_string()),
            protocol: pair.map(|p| p.protocol.to_string()),
        };
        &self.current
    }

    /// The latest complete measurement.
    pub(crate) fn current(&self) -> &LegStats {
        &self.current
    }
}
