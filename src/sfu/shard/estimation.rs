//! Bandwidth estimation only where it decides something. The estimate towards a
//! receiver picks its simulcast layers; a receiver with no simulcast video open (a
//! viewer of single-layer publishers, an audio-only listener) has nothing for it to
//! pick, yet would pay for it on every packet and turn: a transport-wide sequence
//! number on each packet, the peer's feedback to read, the estimator's turns every
//! 25 ms and the pacer's every 40 ms. So estimation is paused for such a receiver
//! (str0m's `Bwe::set_active`, patched in `crates/str0m`) and resumed as soon as it
//! opens a simulcast video, from the estimate it had.

use str0m::media::MediaKind;
use tracing::debug;

use super::Shard;
use crate::sfu::peer::{DownState, Local, Peer};
use crate::signaling::protocol::PeerId;

impl Shard {
    /// Pauses or resumes the bandwidth estimation towards `id` to match whether any
    /// video it receives has layers to choose between. Called with every choice of
    /// layers (new tracks, the periodic layer tick), so a pause str0m refuses (a
    /// probe running) is asked again.
    pub(super) fn sync_estimation(&mut self, id: PeerId) {
        let Some(local) = self.peers.get(&id).and_then(Peer::here) else {
            return;
        };
        if !local.bwe {
            return;
        }
        let pause = !self.has_layers_to_choose(local);
        if pause == local.estimation_paused {
            return;
        }
        let done = self.with_rtc(id, |rtc| rtc.bwe().set_active(!pause));
        if done == Some(true) {
            debug!(id, pause, "bandwidth estimation");
            if let Some(l) = self.peers.get_mut(&id).and_then(Peer::here_mut) {
                l.estimation_paused = pause;
            }
        }
    }

    /// Whether `local` has a simulcast video open.
    fn has_layers_to_choose(&self, local: &Local) -> bool {
        local.down.iter().any(|((src, mid), d)| {
            d.kind == MediaKind::Video
                && matches!(d.state, DownState::Open(_))
                && self
                    .peers
                    .get(src)
                    .and_then(|p| p.up.get(mid))
                    .is_some_and(|up| up.simulcast)
        })
    }
}
