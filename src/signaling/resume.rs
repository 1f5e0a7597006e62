//! Resuming a participant on a new WebSocket. A phone that changes networks, or locks
//! its screen, loses its signaling connection while its call goes on; the page then
//! opens a new WebSocket whose first message is `resume` with the token its `joined`
//! message carried, and the session that serves the participant takes the new socket
//! over (see `session.rs`): same id, the others never see it leave.
//!
//! The map holds one entry per joined participant, from its `joined` until its session
//! ends, so a token dies with its participant. Handing a socket over goes through a
//! channel of one place: one resume per token at a time. The mutex guards a small map
//! and is never held across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use tokio::sync::mpsc;

/// A participant's sessions waiting for a socket to take over, by resume token.
#[derive(Debug)]
pub(crate) struct Resumes {
    /// How long a participant whose WebSocket dropped waits to be resumed
    /// (`--resume-grace`); zero turns resuming off.
    pub(crate) grace: Duration,
    /// Where a new socket goes, by token.
    sessions: Mutex<HashMap<String, mpsc::Sender<Box<WebSocket>>>>,
    /// Participants resumed on a new socket, for `/metrics`.
    resumed: AtomicU64,
    /// Resumes refused (unknown token, or one already under way), for `/metrics`.
    refused: AtomicU64,
}

/// Why a socket could not resume a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResumeError {
    #[error(
        "no participant to resume with this token: it left, or its grace period is over; join again"
    )]
    Unknown,
    #[error("this participant is already being resumed on another connection")]
    Busy,
}

impl Resumes {
    pub(crate) fn new(grace: Duration) -> Self {
        Resumes {
            grace,
            sessions: Mutex::default(),
            resumed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// A new participant's token (128 random bits from the thread's CSPRNG) and where
    /// sockets that resume it will arrive; `None` when resuming is off.
    pub(crate) fn register(&self) -> Option<(String, mpsc::Receiver<Box<WebSocket>>)> {
        if self.grace.is_zero() {
            return None;
        }
        let token = format!("{:032x}", rand::random::<u128>());
        let (tx, rx) = mpsc::channel(1);
        self.lock().insert(token.clone(), tx);
        Some((token, rx))
    }

    /// The participant of `token` is gone: its token opens nothing any more.
    pub(crate) fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Gives `ws` to the session of `token`, or gives it back with why not.
    pub(crate) fn hand_over(
        &self,
        token: &str,
        ws: Box<WebSocket>,
    ) -> Result<(), (ResumeError, Box<WebSocket>)> {
        let tx = self.lock().get(token).cloned();
        let result = match tx {
            None => Err((ResumeError::Unknown, ws)),
            Some(tx) => tx.try_send(ws).map_err(|e| match e {
                mpsc::error::TrySendError::Full(ws) => (ResumeError::Busy, ws),
                mpsc::error::TrySendError::Closed(ws) => (ResumeError::Unknown, ws),
            }),
        };
        match &result {
            Ok(()) => self.resumed.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.refused.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    pub(crate) fn resumed(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Box<WebSocket>>>> {
        // A panic while holding this lock leaves the map as it was: keep using it.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_die_with_their_participant() {
        let r = Resumes::new(Duration::from_secs(30));
        let (a, _rx_a) = r.register().unwrap();
        let (b, _rx_b) = r.register().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(r.lock().len(), 2);
        r.forget(&a);
        assert!(!r.lock().contains_key(&a));
        assert!(r.lock().contains_key(&b));
    }

    #[test]
    fn no_grace_no_token() {
        assert!(Resumes::new(Duration::ZERO).register().is_none());
    }
}
