//! The HTTPS surface: the web app (embedded in the binary, so it runs from anywhere),
//! the WebSocket signaling endpoint, a health check, and the CA downloads and install
//! page data ([`crate::trust`]).

use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::sfu::engine::EngineHandle;
use crate::signaling::{protocol::MAX_MESSAGE_BYTES, session};
use crate::trust::{self, TrustInfo};

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    /// The CA and certificate facts for the install page.
    pub trust: Arc<TrustInfo>,
}

/// The web app's files, compiled in.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../web/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_bytes!("../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "/session.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/session.js"),
    ),
    (
        "/signaling.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/signaling.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/style.css"),
    ),
    (
        "/icon.svg",
        "image/svg+xml",
        include_bytes!("../web/icon.svg"),
    ),
    // The install page and the start page's invite block (QR code of the room link).
    (
        "/trust",
        "text/html; charset=utf-8",
        include_bytes!("../web/trust.html"),
    ),
    (
        "/trust.html",
        "text/html; charset=utf-8",
        include_bytes!("../web/trust.html"),
    ),
    (
        "/trust.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/trust.js"),
    ),
    (
        "/trust.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/trust.css"),
    ),
    (
        "/invite.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/invite.js"),
    ),
];

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(healthz))
        .merge(trust::router(state.trust.clone()))
        .fallback(get(asset))
        .with_state(state)
}

async fn ws(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    // Frames past this hard limit close the socket; below it, session.rs answers
    // anything over MAX_MESSAGE_BYTES with a clear error.
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES * 16)
        .on_upgrade(move |socket| session::run(socket, state.engine))
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine.status().await {
        Some(status) => Json(status).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "media engine stopped").into_response(),
    }
}

async fn asset(uri: Uri) -> Response {
    asset_response(uri.path())
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "not found").into_response())
}

/// The web app's file at `path`, if there is one.
pub(crate) fn asset_response(path: &str) -> Option<Response> {
    let (_, mime, body) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
    Some(
        (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
    )
}
