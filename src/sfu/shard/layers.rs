//! Which simulcast layer each receiver gets: revisited when its estimate, screen or
//! preference changes (the keyframe that switches it is waited for in the fan-out),
//! and told to the receiver when it switches.

use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use tracing::debug;

use super::Shard;
use crate::sfu::peer::{DownState, Peer, TrackKey};
use crate::sfu::simulcast::{Inputs, Quality};
use crate::signaling::protocol::{PeerId, ServerMsg};

impl Shard {
    /// Tells a receiver which layer of a publisher's video it now gets.
    pub(super) fn announce_layer(
        &mut self,
        now: Instant,
        sub: PeerId,
        src: PeerId,
        mid: Mid,
        layer: Rid,
    ) {
        let Some(up) = self.peers.get(&src).and_then(|p| p.up.get(&mid)) else {
            return;
        };
        let layers = up.rates.active(now);
        let index = layers.iter().position(|l| l.rid == layer).unwrap_or(0);
        let reason = self
            .peers
            .get(&sub)
            .and_then(Peer::here)
            .map(|l| match l.quality {
                Quality::High => "you asked for high quality".to_string(),
                Quality::Low => "you asked for low quality".to_string(),
                Quality::Auto if !l.bwe => "fits your screen".to_string(),
                Quality::Auto => match l.estimate_bps {
                    Some(e) => format!(
                        "fits your link (estimate {:.0} kbit/s) and screen",
                        e / 1000.0
                    ),
                    None => "starting small until your link is measured".to_string(),
                },
            })
            .unwrap_or_default();
        debug!(sub, src, %layer, index, "layer switch");
        self.signal(
            sub,
            ServerMsg::Layer {
                peer: src,
                rid: layer.to_string(),
                index,
                count: layers.len(),
                reason,
            },
        );
    }

    /// Revisits the simulcast layer of every video `id` receives; asks for a keyframe
    /// on each newly wanted layer and sets the bandwidth estimator's goals.
    pub(super) fn choose_layers(&mut self, now: Instant, id: PeerId, why: &str) {
        self.sync_estimation(id);
        let Some(local) = self.peers.get(&id).and_then(Peer::here) else {
            return;
        };
        let keys: Vec<TrackKey> = local
            .down
            .iter()
            .filter(|(_, d)| d.kind == MediaKind::Video && matches!(d.state, DownState::Open(_)))
            .map(|(k, _)| *k)
            .collect();
        if keys.is_empty() {
            return;
        }
        // Without an estimate (no transport-wide CC feedback) only the screen and the
        // preference choose.
        let estimate = match local.bwe {
            true => local.estimate_bps,
            false => Some(f64::INFINITY),
        };
        let quality = local.quality;
        let mut requests = Vec::new();
        let (mut min_bps, mut desired_bps) = (0.0, 0.0);
        for (src, mid) in keys {
            let Some(up) = self.peers.get(&src).and_then(|p| p.up.get(&mid)) else {
                continue;
            };
            if !up.simulcast {
                continue;
            }
            let layers = up.rates.active(now);
            let Some(down) = self
                .peers
                .get_mut(&id)
                .and_then(Peer::here_mut)
                .and_then(|l| l.down.get_mut(&(src, mid)))
            else {
                continue;
            };
            let before = down.selector.target();
            let target = down.selector.choose(
                now,
                Inputs {
                    layers: &layers,
                    estimate_bps: estimate,
                    render_width: down.render_width,
                    quality,
                },
            );
            if target != before && target != down.layer {
                debug!(id, src, ?target, why, ?estimate, "layer wanted");
                requests.push((src, mid, target));
            }
            // Keep probing towards the next layer up, so the estimate can show it fits.
            if let Some(i) = target.and_then(|t| layers.iter().position(|l| l.rid == t)) {
                min_bps += layers[i].bps;
                desired_bps += layers.get(i + 1).unwrap_or(&layers[i]).bps * 1.2;
            }
        }
        if desired_bps > 0.0 {
            let (min, desired) = (
                Bitrate::bps(min_bps as u64),
                Bitrate::bps(desired_bps as u64),
            );
            self.with_rtc(id, |rtc| rtc.bwe().set_bitrate(min, desired));
        }
        for (src, mid, layer) in requests {
            self.request_keyframe(now, src, mid, layer, KeyframeRequestKind::Pli);
        }
    }
}
