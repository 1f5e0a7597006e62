//! The HTTPS surface: the web app (embedded in the binary, so it runs from anywhere),
//! the WebSocket signaling endpoint, a health check, and the CA downloads and install
//! page data ([`crate::trust`]), and Prometheus metrics ([`crate::metrics`]). What
//! `/api/rooms` and `/metrics` show depends on the caller's token ([`crate::api`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State, WebSocketUpgrade};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};

use crate::sfu::shard::RoomSnapshot;
use crate::signaling::{protocol::MAX_MESSAGE_BYTES, session};
use crate::state::{AppState, Caller};
use crate::trust;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The web app's files, compiled in.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("/", HTML, include_bytes!("../web/index.html")),
    ("/index.html", HTML, include_bytes!("../web/index.html")),
    ("/app.js", JS, include_bytes!("../web/app.js")),
    ("/session.js", JS, include_bytes!("../web/session.js")),
    ("/links.js", JS, include_bytes!("../web/links.js")),
    ("/stats.js", JS, include_bytes!("../web/stats.js")),
    ("/compare.js", JS, include_bytes!("../web/compare.js")),
    ("/chat.js", JS, include_bytes!("../web/chat.js")),
    ("/speaking.js", JS, include_bytes!("../web/speaking.js")),
    ("/handlers.js", JS, include_bytes!("../web/handlers.js")),
    ("/comparison.js", JS, include_bytes!("../web/comparison.js")),
    ("/measure.js", JS, include_bytes!("../web/measure.js")),
    ("/policy.js", JS, include_bytes!("../web/policy.js")),
    ("/signaling.js", JS, include_bytes!("../web/signaling.js")),
    ("/autoplay.js", JS, include_bytes!("../web/autoplay.js")),
    // The pages' languages (the install page uses them too).
    ("/i18n.js", JS, include_bytes!("../web/i18n.js")),
    ("/lang/en.js", JS, include_bytes!("../web/lang/en.js")),
    ("/lang/zh-CN.js", JS, include_bytes!("../web/lang/zh-CN.js")),
    ("/style.css", CSS, include_bytes!("../web/style.css")),
    ("/icon.svg", SVG, include_bytes!("../web/icon.svg")),
    // The install page and the start page's invite block (QR code of the room link).
    ("/trust", HTML, include_bytes!("../web/trust.html")),
    ("/trust.html", HTML, include_bytes!("../web/trust.html")),
    ("/trust.js", JS, include_bytes!("../web/trust.js")),
    // The recordings page's script (the page is served by /recordings itself).
    ("/recordings.js", JS, include_bytes!("../web/recordings.js")),
    ("/trust.css", CSS, include_bytes!("../web/trust.css")),
    ("/invite.js", JS, include_bytes!("../web/invite.js")),
];

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/rooms", get(rooms))
        .route("/api/cluster", get(cluster))
        .route("/api/rooms/{name}", get(room))
        .route("/api/rooms/{name}/comparison", get(comparison))
        .merge(trust::router(state.trust.clone()))
        .merge(crate::whip::router())
        .merge(crate::record::http::router())
        .fallback(get(asset))
        .with_state(state)
}

/// Initial read buffer of a signaling WebSocket.
const WS_READ_BUFFER: usize = 4096;

async fn ws(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from = peer.map(|Extension(ConnectInfo(a))| a.ip());
    // Frames past this hard limit close the socket; below it, session.rs answers
    // anything over MAX_MESSAGE_BYTES with a clear error.
    // tungstenite zero-fills its whole read buffer before every read: its 128 KiB
    // default made each signaling socket hold 128 KiB of memory. Messages are small
    // (an SDP is a few KiB) and the buffer grows for a larger frame.
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(MAX_MESSAGE_BYTES * 16)
        .on_upgrade(move |socket| {
            session::run(socket, state.engine, from, state.signaling, state.resumes)
        })
}

async fn healthz(State(state): State<AppState>) -> Response {
    match state.engine.status().await {
        Some(status) => Json(status).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "media engine stopped").into_response(),
    }
}

/// Counters and gauges in the Prometheus text format. No names or addresses (see
/// [`crate::metrics`]), but the activity of every room: when an operator token is set,
/// only its holder may scrape.
async fn metrics(State(state): State<AppState>, Caller(audience): Caller) -> Response {
    if !state.access.may_scrape(&audience) {
        let mut res = (
            StatusCode::UNAUTHORIZED,
            "/metrics needs the operator token (Authorization: Bearer TOKEN)\n",
        )
            .into_response();
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    let (Some(status), Some(rooms)) = (state.engine.status().await, state.engine.rooms().await)
    else {
        return (StatusCode::SERVICE_UNAVAILABLE, "media engine stopped").into_response();
    };
    let mut text = crate::metrics::render(
        &status,
        &rooms,
        crate::metrics::Limits {
            connections: state.connections.stats(),
            signaling_throttled: state.signaling.throttled(),
            resumed: state.resumes.resumed(),
            resume_refused: state.resumes.refused(),
            tcp_open: state.tcp.open(),
            tcp_dropped: state.tcp.dropped(),
            tcp_refused: state.tcp.refused(),
            recording: crate::metrics::Recording {
                rooms: state.record_stats.rooms(),
                files_open: state.record_stats.files_open(),
                bytes: state.record_stats.bytes(),
                frames_dropped: state.record_stats.frames_dropped(),
                failures: state.record_stats.failures(),
            },
        },
    );
    if let Some(c) = state.engine.cluster() {
        crate::metrics::render_cluster(&mut text, &status, &c.figures());
    }
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}

/// Every room the caller may see with its participants, the path each receives on,
/// and the server's measurements of relayed legs (addresses for the operator only).
async fn rooms(State(state): State<AppState>, Caller(audience): Caller) -> Response {
    match state.engine.rooms().await {
        Some(mut rooms) => {
            if let Some(c) = state.engine.cluster() {
                for r in &mut rooms {
                    r.cluster = Some(c.room_place(&r.name, &r.edges));
                }
            }
            Json(state.access.filter(&audience, rooms)).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "media engine stopped").into_response(),
    }
}

/// In a cluster: this node, the live nodes and their loads, the rooms this node is the
/// origin of and those it serves as an edge (→ their origin), and its placement
/// decisions. Operators only, as `/metrics` (node addresses and loads); `404` when the
/// node is not in a cluster.
async fn cluster(State(state): State<AppState>, Caller(audience): Caller) -> Response {
    if !state.access.may_scrape(&audience) {
        return (
            StatusCode::UNAUTHORIZED,
            "/api/cluster needs the operator token (Authorization: Bearer TOKEN)\n",
        )
            .into_response();
    }
    match state.engine.cluster() {
        Some(c) => Json(c.figures()).into_response(),
        None => (StatusCode::NOT_FOUND, "this node is not in a cluster\n").into_response(),
    }
}

/// One room, as [`rooms`] shows it; a protected room without its token answers as a
/// room that does not exist (404), so that its name is not confirmed.
async fn room(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Caller(audience): Caller,
) -> Response {
    match visible_room(&state, &audience, &name).await {
        Ok(r) => Json(r).into_response(),
        Err(res) => res,
    }
}

/// Room `name` if the caller may see it; else the answer to give (404 as for a room
/// that does not exist, or 503 when the engine has stopped).
async fn visible_room(
    state: &AppState,
    audience: &crate::api::Audience,
    name: &str,
) -> Result<RoomSnapshot, Response> {
    let Some(rooms) = state.engine.rooms().await else {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "media engine stopped").into_response());
    };
    let rooms = state.access.filter(audience, rooms);
    rooms.into_iter().find(|r| r.name == name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such room"})),
        )
            .into_response()
    })
}

/// The room's latest comparison report (relayed vs direct), as the participant who
/// ran it sent it. Who may read it follows [`room`]: a protected room without its
/// token, like a room that does not exist, answers 404; a room without a report too,
/// with a sentence saying so.
async fn comparison(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Caller(audience): Caller,
) -> Response {
    let room = match visible_room(&state, &audience, &name).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    match room.comparison {
        Some(report) => Json(&*report).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no comparison has been run in this room"})),
        )
            .into_response(),
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

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// A module added to `web/` and not compiled in would break the page in every
    /// browser (its import fails); this catches it before a browser test does.
    #[test]
    fn every_file_of_the_web_app_is_served() {
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut dirs = vec![web.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("a folder of web/") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let rel = path.strip_prefix(&web).expect("under web/");
                let url = format!("/{}", rel.to_string_lossy());
                // The recordings page is served at /recordings, with its access check.
                let elsewhere = [crate::record::http::PAGE_FILE];
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == url) || elsewhere.contains(&url.as_str()),
                    "web{url} is not in ASSETS (src/http.rs)"
                );
            }
        }
    }
}
