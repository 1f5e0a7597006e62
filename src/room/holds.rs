//! What a room's host may hold of a participant's media: per source, free, held, or
//! released again (on when the participant turns it on). The forwarding path asks
//! [`Holds::blocks`] before a packet goes anywhere.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use crate::signaling::protocol::{PeerId, Source};

/// Where one source of a participant stands with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Hold {
    /// Forwarded whenever the participant sends it.
    #[default]
    Free,
    /// Stopped by the host: not forwarded, and the participant may not turn it on.
    Held,
    /// The host allowed it again: the participant may turn it on, and forwarding
    /// resumes when it does (not before: the host never turns anyone's mic on).
    Released,
}

/// What the host holds of one participant's media, per source. The forwarding path
/// asks [`Holds::blocks`] before a packet goes anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Holds {
    microphone: Hold,
    camera: Hold,
    /// The host that held something last.
    by: Option<PeerId>,
}

/// The participant tried to turn on a source the host holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("held by the host")]
pub(crate) struct HeldByHost;

impl Holds {
    /// A screen share is not held: the host stops it (`Shard::stop_screen`), and the
    /// participant may share again.
    fn slot(&mut self, source: Source) -> Option<&mut Hold> {
        match source {
            Source::Microphone => Some(&mut self.microphone),
            Source::Camera => Some(&mut self.camera),
            Source::Screen => None,
        }
    }

    fn get(&self, source: Source) -> Hold {
        match source {
            Source::Microphone => self.microphone,
            Source::Camera => self.camera,
            Source::Screen => Hold::Free,
        }
    }

    /// Packets of `source` are not forwarded.
    #[inline]
    pub(crate) fn blocks(&self, source: Source) -> bool {
        self.get(source) != Hold::Free
    }

    /// The participant may not turn `source` on.
    pub(crate) fn held(&self, source: Source) -> bool {
        self.get(source) == Hold::Held
    }

    /// Anything is held (the participant hears of it after a resume).
    pub(crate) fn any_held(&self) -> bool {
        self.held(Source::Microphone) || self.held(Source::Camera)
    }

    /// The host that held something last.
    pub(crate) fn by(&self) -> Option<PeerId> {
        self.by
    }

    /// Host `by` stops `source`; false if it was held already.
    pub(crate) fn hold(&mut self, source: Source, by: PeerId) -> bool {
        let Some(slot) = self.slot(source) else {
            return false;
        };
        let changed = *slot != Hold::Held;
        *slot = Hold::Held;
        self.by = Some(by);
        changed
    }

    /// Host `by` allows every held source again (it stays off until the participant
    /// turns it on); false if nothing was held.
    pub(crate) fn release(&mut self, by: PeerId) -> bool {
        let mut changed = false;
        for source in [Source::Microphone, Source::Camera] {
            if let Some(slot) = self.slot(source).filter(|s| **s == Hold::Held) {
                *slot = Hold::Released;
                changed = true;
            }
        }
        if changed {
            self.by = Some(by);
        }
        changed
    }

    /// The participant turns `source` on: refused while held; `Ok(true)` when
    /// forwarding resumes with it (it was stopped by a host before).
    pub(crate) fn turn_on(&mut self, source: Source) -> Result<bool, HeldByHost> {
        let Some(slot) = self.slot(source) else {
            return Ok(false);
        };
        match *slot {
            Hold::Held => Err(HeldByHost),
            Hold::Released => {
                *slot = Hold::Free;
                Ok(true)
            }
            Hold::Free => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_source_stays_off_until_allowed_and_turned_on() {
        let mut h = Holds::default();
        assert!(!h.blocks(Source::Microphone));
        assert_eq!(h.turn_on(Source::Microphone), Ok(false));
        assert!(h.hold(Source::Microphone, 7));
        assert!(!h.hold(Source::Microphone, 7), "already held");
        assert!(h.blocks(Source::Microphone) && !h.blocks(Source::Camera));
        assert_eq!(h.by(), Some(7));
        assert_eq!(h.turn_on(Source::Microphone), Err(HeldByHost));
        assert!(h.release(8));
        assert_eq!(h.by(), Some(8));
        assert!(!h.release(8), "nothing held any more");
        assert!(!h.any_held());
        assert!(
            h.blocks(Source::Microphone),
            "off until the participant turns it on"
        );
        assert_eq!(h.turn_on(Source::Microphone), Ok(true));
        assert!(!h.blocks(Source::Microphone));
        h.hold(Source::Camera, 7);
        assert!(h.any_held() && h.held(Source::Camera) && !h.held(Source::Microphone));
    }
}
