//! Keyframe requests to publishers: a new receiver, a layer switch or a receiver's own
//! PLI/FIR asks the publisher of the track, at most once per throttle interval per
//! layer; a request that comes too soon is sent when the interval ends. A stand-in's
//! requests go to its room's home worker.

use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use tracing::debug;

use super::{Output, Shard};
use crate::sfu::link::LinkMsg;
use crate::sfu::peer::Served;
use crate::signaling::protocol::PeerId;

impl Shard {
    /// Asks the publisher of track (`src`, `mid`) for a keyframe on `layer`, throttled.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        src: PeerId,
        mid: Mid,
        layer: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(up) = self.peers.get_mut(&src).and_then(|p| p.up.get_mut(&mid)) else {
            return;
        };
        if up.kind != MediaKind::Video {
            return;
        }
        // Without a layer on a simulcast track (a new receiver), ask every layer: the
        // receiver's layer is chosen from what arrives first.
        let layers: Vec<Option<Rid>> = if layer.is_none() && up.simulcast {
            up.rates.active(now).iter().map(|l| Some(l.rid)).collect()
        } else {
            vec![layer]
        };
        let mut send = Vec::new();
        let mut later = None;
        for l in layers {
            let throttle = up.throttle(l);
            if throttle.request(now) {
                send.push(l);
            } else if let Some(t) = throttle.poll_timeout() {
                later = Some(later.map_or(t, |d: Instant| d.min(t)));
            }
        }
        if let Some(t) = later {
            self.timers.keyframe_at(t);
        }
        for l in send {
            self.send_keyframe_request(src, mid, l, kind);
        }
    }

    /// Deferred requests whose throttle interval has ended; re-arms the timer for the
    /// rest.
    pub(super) fn due_keyframes(&mut self, now: Instant) -> Vec<(PeerId, Mid, Option<Rid>)> {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for p in self.peers.values_mut() {
            for (mid, up) in p.up.iter_mut() {
                for (rid, throttle) in up.keyframes.iter_mut() {
                    if throttle.poll(now) {
                        due.push((p.id, *mid, *rid));
                    }
                    if let Some(t) = throttle.poll_timeout() {
                        next = Some(next.map_or(t, |d| d.min(t)));
                    }
                }
            }
        }
        if let Some(t) = next {
            self.timers.keyframe_at(t);
        }
        due
    }

    pub(super) fn send_keyframe_request(
        &mut self,
        src: PeerId,
        mid: Mid,
        layer: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let Some(peer) = self.peers.get(&src) else {
            return;
        };
        if let Served::StandIn { home } = peer.served {
            if home == crate::sfu::link::REMOTE_HOME {
                // The origin is another node: RTCP on the room's relay link.
                self.relay_keyframe(src, mid, layer, kind);
                return;
            }
            let msg = LinkMsg::KeyframeRequest {
                publisher: src,
                mid,
                layer,
                kind,
            };
            self.out.push_back(Output::Link(home, msg));
            return;
        }
        debug!(src, %mid, ?layer, ?kind, "keyframe request");
        self.with_rtc(src, |rtc| {
            if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mid, layer) {
                rx.request_keyframe(kind);
            }
        });
    }
}
