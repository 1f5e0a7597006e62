//! A token bucket: at most `rate` events a second on average, `burst` at once. Pure:
//! the time is an input, so the limits built on it are tested on a fake clock.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// `rate` events a second, `burst` at once (full to start with).
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Whether the bucket would hold its whole burst at `now` (nothing taken lately).
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        match self.last {
            None => true,
            Some(last) => {
                self.tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate
                    >= self.burst
            }
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Paces a stream of costs (e.g. bytes read) to `rate` a second, letting `burst`
/// seconds' worth through at once (the generic cell rate algorithm). Pure, as above.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    rate: f64,
    burst: Duration,
    /// When the stream would be even again had it been paced exactly.
    due: Option<Instant>,
}

impl Pace {
    pub(crate) fn new(rate: f64, burst: Duration) -> Self {
        Pace {
            rate,
            burst,
            due: None,
        }
    }

    /// Charges `cost` at `now`; `Some(t)` when the stream is over its rate and the
    /// next item should wait until `t`.
    pub(crate) fn charge(&mut self, cost: f64, now: Instant) -> Option<Instant> {
        let from = self.due.map_or(now, |d| d.max(now));
        let due = from + Duration::from_secs_f64(cost / self.rate);
        self.due = Some(due);
        let ahead = due.saturating_duration_since(now);
        (ahead > self.burst).then(|| now + (ahead - self.burst))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test's fake clock starts anywhere
mod tests {
    use super::*;

    #[test]
    fn pace_lets_a_burst_through_then_holds_to_the_rate() {
        let t0 = Instant::now();
        // 1,000 a second, a second's worth at once.
        let mut p = Pace::new(1000.0, Duration::from_secs(1));
        assert_eq!(p.charge(600.0, t0), None);
        assert_eq!(p.charge(400.0, t0), None, "the whole burst");
        let wait = p.charge(500.0, t0).expect("over the burst");
        assert_eq!(
            wait,
            t0 + Duration::from_millis(500),
            "half a second's worth over"
        );
        // Waiting that long, the next small item is still over (the burst is spent);
        // after a quiet while it is let through again.
        assert!(p.charge(100.0, wait).is_some());
        assert_eq!(p.charge(100.0, t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 20.0);
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, 20, "the burst, at once");
        let later = t0 + Duration::from_secs(1);
        let refilled = (0..100).filter(|_| b.take(later)).count();
        assert_eq!(refilled, 10, "a second refills the rate");
        let much_later = t0 + Duration::from_secs(60);
        let capped = (0..100).filter(|_| b.take(much_later)).count();
        assert_eq!(capped, 20, "never more than the burst");
    }
}
