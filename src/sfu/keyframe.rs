//! Keyframe request throttling for one up track.
//!
//! Receivers ask for keyframes (PLI/FIR) when they join, lose packets they cannot
//! recover, or switch layers. Forwarding every request makes the publisher's encoder
//! spit out large keyframes back to back and hurts everyone; asking too rarely leaves a
//! receiver frozen. A request is passed on at once when none went out recently,
//! otherwise it is remembered and sent when the interval has passed.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

/// Shortest time between two keyframe requests sent to one publisher track.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last_sent: Option<Instant>,
    pending: bool,
}

impl Throttle {
    /// A receiver wants a keyframe. Returns true when the request should go to the
    /// publisher now; otherwise it is deferred until [`Throttle::poll`] says so.
    pub(crate) fn request(&mut self, now: Instant) -> bool {
        if self.ready(now) {
            self.last_sent = Some(now);
            self.pending = false;
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// Whether a deferred request is due now.
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        if self.pending && self.ready(now) {
            self.last_sent = Some(now);
            self.pending = false;
            return true;
        }
        false
    }

    /// When [`Throttle::poll`] should next be called, if a request is waiting.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        self.last_sent.map(|t| t + MIN_INTERVAL)
    }

    fn ready(&self, now: Instant) -> bool {
        self.last_sent.is_none_or(|t| now >= t + MIN_INTERVAL)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    #[test]
    fn first_request_passes_then_coalesces() {
        let t0 = Instant::now();
        let mut th = Throttle::default();
        assert!(th.request(t0));
        assert!(!th.request(t0 + Duration::from_millis(10)));
        assert!(!th.request(t0 + Duration::from_millis(20)));
        assert_eq!(th.poll_timeout(), Some(t0 + MIN_INTERVAL));
        assert!(!th.poll(t0 + Duration::from_millis(499)));
        // The three requests collapse into one deferred send.
        assert!(th.poll(t0 + MIN_INTERVAL));
        assert!(!th.poll(t0 + MIN_INTERVAL * 3));
        assert_eq!(th.poll_timeout(), None);
    }

    #[test]
    fn spaced_requests_all_pass() {
        let t0 = Instant::now();
        let mut th = Throttle::default();
        assert!(th.request(t0));
        assert!(th.request(t0 + MIN_INTERVAL));
        assert!(th.request(t0 + MIN_INTERVAL * 2));
    }
}
