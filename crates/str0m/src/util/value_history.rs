use std::collections::VecDeque;
use std::iter::Sum;
use std::ops::{AddAssign, SubAssign};
use std::time::{Duration, Instant};

/// Holds a history values of type T for up to a certain Duration, as well as the
/// cumulated (total) value.
#[derive(Debug)]
pub(crate) struct ValueHistory<T> {
    value: T,
    /// lanrelay patch: the newest entry, still taking values (see [`BUCKET`]). It
    /// lives here, beside `value`, not at the back of `history`: a push per packet
    /// then writes the cache line the caller's stats already hold, instead of the
    /// deque's buffer elsewhere on the heap (cold again by the next packet of the
    /// same stream when a fan-out sends to many receivers in between).
    open: Option<(Instant, T)>,
    /// The closed entries, oldest first, all older than `open`.
    history: VecDeque<(Instant, T)>,
    max_time: Duration,
}

const DEFAULT_VALUE_HISTORY_DURATION: Duration = Duration::from_secs(1);

/// lanrelay patch: a value pushed within this long of the newest entry is added to
/// it, so the history keeps at most one entry per 10 ms instead of one per packet
/// sent (about 300 a second, 7-14 KiB, per video stream). Purging is 10 ms coarser,
/// which a share of resends over a second does not notice.
const BUCKET: Duration = Duration::from_millis(10);

impl<T: Default> Default for ValueHistory<T> {
    fn default() -> Self {
        Self {
            value: Default::default(),
            open: None,
            history: Default::default(),
            max_time: DEFAULT_VALUE_HISTORY_DURATION,
        }
    }
}

impl<T> ValueHistory<T>
where
    T: Copy + AddAssign + SubAssign + Sum,
{
    /// Adds a timed value
    /// Note: time should always monotonically increase in subsequent calls to add()
    pub fn push(&mut self, t: Instant, v: T) {
        self.value += v;
        if let Some((open_t, open_v)) = &mut self.open {
            if t.saturating_duration_since(*open_t) < BUCKET {
                *open_v += v;
                return;
            }
        }
        if let Some(closed) = self.open.take() {
            self.history.push_back(closed);
        }
        // lanrelay patch: entries older than `max_time` go as new ones come. Upstream
        // only purges when the share of resends is asked for, which happens when a
        // resend is due: on a stream that loses nothing the history grew for the whole
        // call (one entry per packet upstream, 7 KB a second per video stream).
        self.purge_old(t);
        self.open = Some((t, v));
    }

    /// Returns the sum of all values in the history up to max_time. Might
    /// return stale value unless [`ValueHistory::purge_old`] is called before.
    pub fn sum(&self) -> T {
        self.value
    }

    /// Recalculates sum purging values older than `now - max_time`.
    pub fn purge_old(&mut self, now: Instant) {
        let old = |t: Instant| now.saturating_duration_since(t) > self.max_time;
        while self.history.front().is_some_and(|(t, _)| old(*t)) {
            if let Some((_, v)) = self.history.pop_front() {
                self.value -= v;
            }
        }
        if self.history.is_empty() && self.open.is_some_and(|(t, _)| old(t)) {
            if let Some((_, v)) = self.open.take() {
                self.value -= v;
            }
        }
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.history.len() + usize::from(self.open.is_some())
    }
}

#[allow(clippy::unchecked_time_subtraction)]
#[cfg(test)]
mod test {
    use std::time::{Duration, Instant};

    use super::ValueHistory;

    #[test]
    fn with_value_test() {
        let now = Instant::now();

        let mut h = ValueHistory {
            value: 11,
            max_time: Duration::from_secs(1),
            ..Default::default()
        };

        assert_eq!(h.sum(), 11);
        h.purge_old(now);
        assert_eq!(h.sum(), 11);
        h.push(now - Duration::from_millis(1500), 22);
        h.push(now - Duration::from_millis(500), 22);
        assert_eq!(h.sum(), 11 + 22 + 22);
        h.purge_old(now);
        assert_eq!(h.sum(), 11 + 22);
        h.push(now, 0);
        assert_eq!(h.sum(), 11 + 22);
    }

    #[test]
    fn test() {
        let now = Instant::now();
        let mut h = ValueHistory::default();

        assert_eq!(h.sum(), 0);
        h.push(now - Duration::from_millis(1500), 22);
        assert_eq!(h.sum(), 22);
        h.purge_old(now);
        assert_eq!(h.sum(), 0);
        h.push(now - Duration::from_millis(700), 22);
        h.push(now - Duration::from_millis(500), 33);
        assert_eq!(h.sum(), 22 + 33);
        h.purge_old(now);
        assert_eq!(h.sum(), 22 + 33);

        h.purge_old(now + Duration::from_millis(400));
        assert_eq!(h.sum(), 33);
        h.purge_old(now + Duration::from_millis(600));
        assert_eq!(h.sum(), 0);
    }

    #[test]
    fn values_close_together_share_an_entry() {
        let now = Instant::now();
        let mut h: ValueHistory<u64> = ValueHistory::default();
        for i in 0..100 {
            h.push(now + Duration::from_micros(i * 3_000), 1);
        }
        assert_eq!(h.sum(), 100);
        // 300 ms of pushes every 3 ms: one entry per 10 ms or so, not one each.
        assert!(h.entries() <= 31, "{} entries", h.entries());
        h.purge_old(now + Duration::from_millis(1_150));
        // Entries from before 150 ms are gone, with everything added to them.
        assert!(h.sum() < 100 && h.sum() > 40, "{}", h.sum());
        h.purge_old(now + Duration::from_millis(1_400));
        assert_eq!(h.sum(), 0);
    }

    #[test]
    fn push_alone_keeps_only_max_time() {
        // lanrelay patch: the history stays bounded without anyone calling purge_old.
        let start = Instant::now();
        let mut h = ValueHistory::default();
        for i in 0..10_000_u64 {
            h.push(start + Duration::from_millis(i), 1);
        }
        // One entry per BUCKET (10 ms) over the last second (max_time), and the one
        // that just opened.
        assert!(h.entries() <= 102, "{} entries", h.entries());
        assert!(h.sum() <= 1_020, "sum {}", h.sum());
        assert!(h.sum() >= 990, "sum {}", h.sum());
    }
}
