//! Simulcast layer choice, Sans-IO: which of a publisher's video layers (rids) each
//! receiver gets. A publisher sends several encodings of the same video (e.g. quarter,
//! half and full resolution); every receiver gets exactly one, chosen from what its
//! link can carry (the server's bandwidth estimate towards it), the size it renders the
//! video at, and its own preference. Going down is immediate; going up waits until the
//! higher layer has fitted for [`UP_DELAY`], so a receiver does not flap between layers.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

use str0m::media::Rid;

pub(crate) use crate::signaling::protocol::Quality;

/// A layer must fit this long before a receiver moves up to it.
pub(crate) const UP_DELAY: Duration = Duration::from_secs(2);
/// Share of the bandwidth estimate a layer may use to be moved up to (room for audio
/// and overhead).
pub(crate) const HEADROOM: f64 = 0.85;
/// Share of the estimate the current layer may use before a receiver moves down. Above
/// `HEADROOM`, so that a layer whose rate swings (a keyframe raises it for a while)
/// with an estimate that settles just above it is kept, not dropped and taken again:
/// the estimator, probing to `desired` (the rate of the next layer up, or of the top
/// layer when on it, with 20 % on it), holds the estimate at about that, only just
/// above what `HEADROOM` asks of the top layer.
pub(crate) const STAY_HEADROOM: f64 = 1.0;
/// A layer silent this long is not offered to receivers.
const LAYER_TIMEOUT: Duration = Duration::from_secs(2);
/// Bitrates are measured over windows of this length.
const WINDOW: Duration = Duration::from_millis(500);

/// What the server knows of one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Layer {
    pub(crate) rid: Rid,
    /// Measured bitrate, bits per second.
    pub(crate) bps: f64,
    /// Frame width, once a keyframe told it.
    pub(crate) width: Option<u32>,
}

#[derive(Debug, Clone)]
struct Rate {
    rid: Rid,
    window_start: Instant,
    window_bytes: u64,
    bps: f64,
    last_seen: Instant,
    width: Option<u32>,
}

/// Measured bitrate and frame size of each layer of one up track.
#[derive(Debug, Clone, Default)]
pub(crate) struct LayerRates {
    rates: Vec<Rate>,
}

impl LayerRates {
    /// A packet of `len` payload bytes arrived on layer `rid`.
    pub(crate) fn on_packet(&mut self, now: Instant, rid: Rid, len: usize) {
        let r = match self.rates.iter_mut().position(|r| r.rid == rid) {
            Some(i) => &mut self.rates[i],
            None => {
                self.rates.push(Rate {
                    rid,
                    window_start: now,
                    window_bytes: 0,
                    bps: 0.0,
                    last_seen: now,
                    width: None,
                });
                self.rates.last_mut().expect("just pushed")
            }
        };
        r.last_seen = now;
        r.window_bytes += len as u64;
        let elapsed = now.saturating_duration_since(r.window_start);
        if elapsed >= WINDOW {
            let sample = r.window_bytes as f64 * 8.0 / elapsed.as_secs_f64();
            // Smooth over a few windows: keyframes make single windows spiky.
            r.bps = if r.bps == 0.0 {
                sample
            } else {
                0.7 * r.bps + 0.3 * sample
            };
            r.window_start = now;
            r.window_bytes = 0;
        }
    }

    /// A keyframe on `rid` told the frame width.
    pub(crate) fn on_width(&mut self, rid: Rid, width: u32) {
        if let Some(r) = self.rates.iter_mut().find(|r| r.rid == rid) {
            r.width = Some(width);
        }
    }

    /// The layers heard from recently, smallest first (by width when known, else by
    /// bitrate).
    pub(crate) fn active(&self, now: Instant) -> Vec<Layer> {
        let mut v: Vec<Layer> = self
            .rates
            .iter()
            .filter(|r| now.saturating_duration_since(r.last_seen) < LAYER_TIMEOUT)
            .map(|r| Layer {
                rid: r.rid,
                bps: r.bps,
                width: r.width,
            })
            .collect();
        let all_widths = v.iter().all(|l| l.width.is_some());
        v.sort_by(|a, b| {
            if all_widths {
                a.width.cmp(&b.width)
            } else {
                a.bps.total_cmp(&b.bps)
            }
        });
        v
    }
}

/// What a receiver's layer choice depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    /// Available layers, smallest first.
    pub(crate) layers: &'a [Layer],
    /// The server's bandwidth estimate towards the receiver, bits per second.
    pub(crate) estimate_bps: Option<f64>,
    /// The width the receiver renders this video at (device pixels).
    pub(crate) render_width: Option<u32>,
    pub(crate) quality: Quality,
}

/// The layer choice for one receiver of one video track.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    target: Option<Rid>,
    /// Since when a layer above the target has fitted, and which.
    higher_since: Option<(Instant, Rid)>,
}

impl Selector {
    /// The layer this receiver should get now. Call whenever an input changes and
    /// regularly (moving up needs time to pass).
    pub(crate) fn choose(&mut self, now: Instant, inputs: Inputs<'_>) -> Option<Rid> {
        let layers = inputs.layers;
        if layers.is_empty() {
            return self.target;
        }
        let ideal = ideal_index(inputs, HEADROOM);
        let current = self
            .target
            .and_then(|t| layers.iter().position(|l| l.rid == t));
        let chosen = match current {
            // First choice, or the current layer went away: take the ideal at once.
            None => ideal,
            // The current layer no longer fits even the whole estimate (or the screen
            // or preference asks for less): down at once.
            Some(c) if ideal_index(inputs, STAY_HEADROOM) < c => ideal,
            Some(c) if ideal <= c => {
                self.higher_since = None;
                c
            }
            Some(c) => {
                let rid = layers[ideal].rid;
                match self.higher_since {
                    Some((since, r))
                        if r == rid && now.saturating_duration_since(since) >= UP_DELAY =>
                    {
                        ideal
                    }
                    Some((_, r)) if r == rid => c,
                    _ => {
                        self.higher_since = Some((now, rid));
                        c
                    }
                }
            }
        };
        let rid = layers[chosen].rid;
        if Some(rid) != self.target {
            self.higher_since = None;
        }
        self.target = Some(rid);
        self.target
    }

    pub(crate) fn target(&self) -> Option<Rid> {
        self.target
    }
}

/// The best layer for the inputs, ignoring how long it has fitted, when a layer may
/// use `headroom` of the estimate.
fn ideal_index(inputs: Inputs<'_>, headroom: f64) -> usize {
    let layers = inputs.layers;
    let top = layers.len() - 1;
    match inputs.quality {
        Quality::Low => return 0,
        Quality::High => return top,
        Quality::Auto => {}
    }
    // The link: the largest measured layer within the estimate (the smallest always
    // fits; a layer not measured yet does not, so a new receiver starts small).
    let by_bandwidth = match inputs.estimate_bps {
        Some(est) => layers
            .iter()
            .rposition(|l| l.bps > 0.0 && l.bps <= est * headroom)
            .unwrap_or(0),
        None => 0,
    };
    // The screen: no layer much larger than the tile (the first layer at least as wide
    // as the rendered video).
    let by_size = match inputs.render_width {
        Some(w) if layers.iter().all(|l| l.width.is_some()) => layers
            .iter()
            .position(|l| l.width.unwrap_or(0) >= w)
            .unwrap_or(top),
        _ => top,
    };
    by_bandwidth.min(by_size)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    fn layers() -> Vec<Layer> {
        vec![
            Layer {
                rid: "q".into(),
                bps: 150_000.0,
                width: Some(320),
            },
            Layer {
                rid: "h".into(),
                bps: 500_000.0,
                width: Some(640),
            },
            Layer {
                rid: "f".into(),
                bps: 1_500_000.0,
                width: Some(1280),
            },
        ]
    }

    fn inputs(l: &[Layer], est: Option<f64>) -> Inputs<'_> {
        Inputs {
            layers: l,
            estimate_bps: est,
            render_width: None,
            quality: Quality::Auto,
        }
    }

    #[test]
    fn bandwidth_decides_and_down_is_immediate() {
        let l = layers();
        let t0 = Instant::now();
        let mut s = Selector::default();
        assert_eq!(
            s.choose(t0, inputs(&l, Some(3_000_000.0))),
            Some("f".into())
        );
        // The estimate drops: down at once, to the layer that fits.
        assert_eq!(s.choose(t0, inputs(&l, Some(700_000.0))), Some("h".into()));
        assert_eq!(s.choose(t0, inputs(&l, Some(100_000.0))), Some("q".into()));
    }

    #[test]
    fn a_layer_is_kept_while_the_estimate_covers_it() {
        let l = layers();
        let t0 = Instant::now();
        let t = |s| t0 + Duration::from_secs(s);
        let mut s = Selector::default();
        assert_eq!(
            s.choose(t0, inputs(&l, Some(3_000_000.0))),
            Some("f".into())
        );
        // 1.6 Mbit/s: f (1.5) would not be moved up to (it wants 15 % to spare), but
        // the receiver on it keeps it.
        assert_eq!(
            s.choose(t(1), inputs(&l, Some(1_600_000.0))),
            Some("f".into())
        );
        // Below f's rate: down at once, to the layer that fits with room to spare.
        assert_eq!(
            s.choose(t(2), inputs(&l, Some(1_400_000.0))),
            Some("h".into())
        );
        // Back at 1.6 Mbit/s, however long: not up to f, which does not fit with room.
        for at in 3..10 {
            assert_eq!(
                s.choose(t(at), inputs(&l, Some(1_600_000.0))),
                Some("h".into())
            );
        }
    }

    #[test]
    fn up_waits_for_stability() {
        let l = layers();
        let t0 = Instant::now();
        let mut s = Selector::default();
        assert_eq!(
            s.choose(t0, inputs(&l, None)),
            Some("q".into()),
            "start small"
        );
        let t = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(
            s.choose(t(100), inputs(&l, Some(3_000_000.0))),
            Some("q".into())
        );
        assert_eq!(
            s.choose(t(1500), inputs(&l, Some(3_000_000.0))),
            Some("q".into())
        );
        // A dip resets the clock.
        assert_eq!(
            s.choose(t(1600), inputs(&l, Some(200_000.0))),
            Some("q".into())
        );
        assert_eq!(
            s.choose(t(1700), inputs(&l, Some(3_000_000.0))),
            Some("q".into())
        );
        assert_eq!(
            s.choose(t(3600), inputs(&l, Some(3_000_000.0))),
            Some("q".into())
        );
        assert_eq!(
            s.choose(t(3800), inputs(&l, Some(3_000_000.0))),
            Some("f".into())
        );
    }

    #[test]
    fn unmeasured_layers_do_not_fit() {
        let mut l = layers();
        l[2].bps = 0.0;
        let mut s = Selector::default();
        assert_eq!(
            s.choose(Instant::now(), inputs(&l, Some(9_000_000.0))),
            Some("h".into())
        );
    }

    #[test]
    fn render_size_and_preference() {
        let l = layers();
        let t0 = Instant::now();
        let mut s = Selector::default();
        let small_tile = Inputs {
            render_width: Some(400),
            ..inputs(&l, Some(5_000_000.0))
        };
        assert_eq!(
            s.choose(t0, small_tile),
            Some("h".into()),
            "no full layer for a small tile"
        );
        let mut s = Selector::default();
        let low = Inputs {
            quality: Quality::Low,
            ..inputs(&l, Some(5_000_000.0))
        };
        assert_eq!(s.choose(t0, low), Some("q".into()));
        let high = Inputs {
            quality: Quality::High,
            ..inputs(&l, Some(10_000.0))
        };
        let mut s = Selector::default();
        assert_eq!(s.choose(t0, high), Some("f".into()));
    }

    #[test]
    fn rates_measure_and_order_layers() {
        let t0 = Instant::now();
        let mut r = LayerRates::default();
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(i * 10);
            r.on_packet(now, "f".into(), 1000);
            if i % 4 == 0 {
                r.on_packet(now, "q".into(), 500);
            }
        }
        let now = t0 + Duration::from_millis(1000);
        let a = r.active(now);
        assert_eq!(
            a.iter().map(|l| l.rid).collect::<Vec<_>>(),
            vec![Rid::from("q"), Rid::from("f")]
        );
        assert!((a[1].bps - 800_000.0).abs() < 100_000.0, "{}", a[1].bps);
        // Silent layers drop out.
        assert!(r.active(now + Duration::from_secs(3)).is_empty());
        r.on_width("q".into(), 320);
        r.on_width("f".into(), 1280);
        assert_eq!(r.active(now)[0].width, Some(320));
    }
}
