//! What every HTTP handler shares: the media engine's handle, the facts the install
//! page shows, and who may see what of the rooms. Its own module so that the router ([`crate::http`]) and the handlers
//! it merges in ([`crate::whip`], [`crate::trust`]) depend on it, not on each other.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::api::{Access, Audience};
use crate::conns::ConnectionLimit;
use crate::sfu::engine::EngineHandle;
use crate::sfu::tcp::TcpStats;
use crate::signaling::resume::Resumes;
use crate::signaling::session::ReadLimit;
use crate::trust::TrustInfo;

/// What the HTTP handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: EngineHandle,
    /// The CA and certificate facts for the install page.
    pub(crate) trust: Arc<TrustInfo>,
    /// The tokens that open `/api/rooms` (protected rooms, addresses) and `/metrics`.
    pub(crate) access: Arc<Access>,
    /// TCP connections per client address (their counts show in `/metrics`).
    pub(crate) connections: Arc<ConnectionLimit>,
    /// How fast each signaling connection is read.
    pub(crate) signaling: ReadLimit,
    /// Participants whose connection may be resumed, by token.
    pub(crate) resumes: Arc<Resumes>,
    /// ICE-TCP connections on the HTTPS port.
    pub(crate) tcp: Arc<TcpStats>,
    /// Where recordings are written (`--recordings`), and what the recorder counted.
    pub(crate) record_dir: Arc<std::path::PathBuf>,
    pub(crate) record_stats: Arc<crate::record::RecordStats>,
}

/// `?token=TOKEN`, for callers that cannot set a header (a link in a browser).
#[derive(Debug, Default, serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Who is asking: the audience its token (header or `?token=`) makes it. A query
/// that does not parse carries no token.
pub(crate) struct Caller(pub(crate) Audience);

impl FromRequestParts<AppState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query: Result<Query<TokenQuery>, QueryRejection> =
            Query::from_request_parts(parts, state).await;
        let from_query = query.as_ref().ok().and_then(|Query(q)| q.token.as_deref());
        let token = crate::api::request_token(&parts.headers, from_query);
        Ok(Caller(state.access.audience(token)))
    }
}
