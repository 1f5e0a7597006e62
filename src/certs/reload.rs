//! Keeps the served certificate current without a restart. A small task polls the
//! certificate and key files (every 2 s by default) and, once a change has settled,
//! loads them into the running TLS configuration; a file that does not load (half
//! written, key not matching) is reported and the previous certificate stays in use.
//! It also warns before the certificate expires and, for lanrelay's own CA, issues a
//! new server certificate when it is due (which the same polling then picks up).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum_server::tls_rustls::RustlsConfig;
use time::OffsetDateTime;
use tracing::{info, warn};

use super::files::{stamp, Stamp};
use super::inspect::{self, CertSummary, Expiry};
use super::{Authority, Wanted};

/// How often an expiry warning is repeated, and a failed renewal retried.
const NAG_EVERY: Duration = Duration::from_secs(24 * 3600);

/// What the reload task watches and updates.
pub struct Watch {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub tls: RustlsConfig,
    pub poll: Duration,
    /// The certificate being served; read by the install page.
    pub current: Arc<RwLock<CertSummary>>,
    /// lanrelay's CA and what to issue for, when the server certificate is its own.
    pub renewal: Option<(Arc<Authority>, Wanted)>,
}

/// Starts the reload task; abort the handle to stop it.
pub fn spawn(watch: Watch) -> tokio::task::JoinHandle<()> {
    // The files as they were loaded: stamped now, not when the task first runs, so a
    // change made in between is not taken for the loaded version.
    let loaded = (stamp(&watch.cert_path), stamp(&watch.key_path));
    tokio::spawn(run(watch, loaded))
}

async fn run(w: Watch, loaded: (Option<Stamp>, Option<Stamp>)) {
    let stamps = || (stamp(&w.cert_path), stamp(&w.key_path));
    let mut settle = Settle::new(loaded);
    let mut ticker = tokio::time::interval(w.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // For a certificate of one's own, the start already logged any expiry warning;
    // lanrelay's own is renewed as soon as it is due (the start issued a fresh one, so
    // that is when one is swapped in or the server ran for a year).
    let mut last_nag = match w.renewal {
        Some(_) => None,
        None => Some(Instant::now()),
    };
    loop {
        ticker.tick().await;
        if settle.observe(stamps()) {
            reload(&w).await;
        }
        let not_after = match w.current.read() {
            Ok(c) => c.not_after,
            Err(_) => return,
        };
        let now = OffsetDateTime::now_utc();
        if matches!(inspect::expiry(not_after, now), Expiry::Fine { .. }) {
            continue;
        }
        if last_nag.is_some_and(|t| t.elapsed() < NAG_EVERY) {
            continue;
        }
        last_nag = Some(Instant::now());
        match &w.renewal {
            Some((ca, wanted)) => renew(&w, ca, wanted, now),
            None => {
                if let Ok(c) = w.current.read() {
                    super::log_expiry(&c, &w.cert_path, now);
                }
            }
        }
    }
}

/// Loads the changed files into the TLS configuration.
async fn reload(w: &Watch) {
    let (cert, key) = match (
        tokio::fs::read(&w.cert_path).await,
        tokio::fs::read(&w.key_path).await,
    ) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => {
            warn!(path = %w.cert_path.display(), "cannot read the changed certificate files, keeping the previous certificate: {e}");
            return;
        }
    };
    let summary = match inspect::summarize_pem(&String::from_utf8_lossy(&cert)) {
        Ok(s) => s,
        Err(e) => {
            warn!(path = %w.cert_path.display(), "the changed certificate is not usable, keeping the previous one: {e}");
            return;
        }
    };
    if let Err(e) = w.tls.reload_from_pem(cert, key).await {
        warn!(path = %w.cert_path.display(), "the changed certificate or key is not usable, keeping the previous certificate: {e}");
        return;
    }
    info!(
        path = %w.cert_path.display(),
        names = ?summary.names,
        until = %inspect::format_date(summary.not_after),
        "reloaded the TLS certificate"
    );
    super::log_expiry(&summary, &w.cert_path, OffsetDateTime::now_utc());
    if let Ok(mut c) = w.current.write() {
        *c = summary;
    }
}

/// Issues a new server certificate from lanrelay's CA; the polling loads it.
fn renew(w: &Watch, ca: &Authority, wanted: &Wanted, now: OffsetDateTime) {
    let result = ca
        .issue(&wanted.names, wanted.hostname.as_deref(), now)
        .and_then(|issued| Authority::write(&issued, &w.cert_path, &w.key_path));
    match result {
        Ok(()) => {
            info!(path = %w.cert_path.display(), "the server certificate was due: issued a new one from lanrelay's CA")
        }
        Err(e) => {
            warn!(path = %w.cert_path.display(), "the server certificate expires soon and a new one could not be issued: {e}")
        }
    }
}

/// Decides when changed files are read: once their stamps differ from what was last
/// loaded and stayed the same for one poll (so a certificate and key written one
/// after the other are read as a pair, not half way).
#[derive(Debug)]
pub struct Settle<S> {
    loaded: S,
    seen: S,
}

impl<S: PartialEq + Copy> Settle<S> {
    pub fn new(initial: S) -> Self {
        Settle {
            loaded: initial,
            seen: initial,
        }
    }

    /// Called on each poll with the current stamps; true when it is time to reload.
    pub fn observe(&mut self, now: S) -> bool {
        let settled = now == self.seen;
        self.seen = now;
        if settled && now != self.loaded {
            self.loaded = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_once_after_a_change_settles() {
        let mut s = Settle::new(1);
        assert!(!s.observe(1), "nothing changed");
        assert!(!s.observe(2), "changed: wait one poll");
        assert!(!s.observe(3), "still changing");
        assert!(s.observe(3), "settled: reload");
        assert!(!s.observe(3), "only once");
        assert!(!s.observe(1), "back to an old version: wait");
        assert!(s.observe(1), "then reload it");
    }
}
