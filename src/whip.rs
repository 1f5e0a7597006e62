//! WHIP (RFC 9725) ingest and WHEP playback over HTTP: `POST /whip/ROOM` with an SDP
//! offer publishes into a room (OBS, GStreamer, ffmpeg, any WHIP client);
//! `POST /whep/ROOM` plays the room's current publishers. The answer comes back with
//! `201 Created` and a `Location` for the session; `DELETE` on it ends the session.
//! Trickle ICE and ICE restarts by `PATCH` are not supported (the server is ICE-lite
//! and its candidates are in the answer): `PATCH` gets `405`. Rooms with a token need
//! `Authorization: Bearer TOKEN`. CORS is open, so players on other origins work.
//!
//! Sessions live in memory only: after a restart every session URL answers `404` (to
//! `PATCH` and `DELETE` alike), and a client recovers by POSTing a new offer to the
//! same endpoint, as OBS does when its connection fails.

use axum::body::Bytes;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::Router;

use crate::cluster::Place;
use crate::signaling::protocol::{check_name, ErrorCode};
use crate::state::AppState;

/// Largest SDP offer accepted.
const MAX_OFFER: usize = 64 * 1024;

/// The WHIP and WHEP routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/whip/{room}", post(whip).options(preflight))
        .route("/whep/{room}", post(whep).options(preflight))
        .route(
            "/whip/{room}/{resource}",
            axum::routing::delete(end).patch(patch).options(preflight),
        )
        .route(
            "/whep/{room}/{resource}",
            axum::routing::delete(end).patch(patch).options(preflight),
        )
}

async fn whip(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = peer.map(|Extension(ConnectInfo(a))| a.ip());
    start(state, false, room, headers, body, from).await
}

async fn whep(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let from = peer.map(|Extension(ConnectInfo(a))| a.ip());
    start(state, true, room, headers, body, from).await
}

async fn start(
    state: AppState,
    whep: bool,
    room: String,
    headers: HeaderMap,
    body: Bytes,
    from: Option<IpAddr>,
) -> Response {
    let sdp_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !sdp_type {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be Content-Type: application/sdp",
        );
    }
    if body.len() > MAX_OFFER {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the offer is too large");
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the offer is not UTF-8");
    };
    // The shard refuses a bad name too; checked here first to say which rule it breaks.
    if let Err(e) = check_name(&room) {
        return error(StatusCode::BAD_REQUEST, &format!("the room name {e}"));
    }
    let token = bearer(&headers);
    // In a cluster: served here (as the room's origin, or a player as an edge), or
    // sent to the node that serves it (`307`, which RFC 9725 and the WHEP draft ask
    // clients to follow, POSTing the same offer there).
    let edge = match state.engine.place(&room, whep).await {
        None | Some(Place::Origin) => false,
        Some(Place::Edge { .. }) => true,
        Some(Place::Redirect { url }) => {
            let kind = if whep { "whep" } else { "whip" };
            let location = format!("{url}/{kind}/{}", encode_segment(&room));
            let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            return cors(res);
        }
        Some(Place::Unavailable { retry_after }) => {
            let mut res = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the cluster cannot place this session now (its coordination service is unreachable)",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return res;
        }
    };
    match state
        .engine
        .http_session(whep, room.clone(), token, offer, from, edge)
        .await
    {
        Ok((resource, answer)) => {
            let kind = if whep { "whep" } else { "whip" };
            let location = format!("/{kind}/{}/{resource}", encode_segment(&room));
            let mut res = (StatusCode::CREATED, answer).into_response();
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("\"{resource}\"")) {
                h.insert(header::ETAG, v);
            }
            cors(res)
        }
        Err((code, message)) => {
            let status = match code {
                ErrorCode::Forbidden => StatusCode::UNAUTHORIZED,
                ErrorCode::RoomFull => StatusCode::CONFLICT,
                ErrorCode::RoomLocked => StatusCode::FORBIDDEN,
                ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut res = error(status, &message);
            if status == StatusCode::UNAUTHORIZED {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // A server-wide limit: room may free up soon.
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                // The address's allowance of new sessions refills within the minute.
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            res
        }
    }
}

async fn end(
    State(state): State<AppState>,
    Path((_room, resource)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if state.engine.end_resource(resource).await {
        cors(StatusCode::OK.into_response())
    } else {
        gone(&uri)
    }
}

/// `PATCH` on a live session: not supported (`405`); on a session the server does not
/// know (ended, or before a restart): `404`, so the client knows to POST again.
async fn patch(
    State(state): State<AppState>,
    Path((_room, resource)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if !state.engine.has_resource(resource).await {
        return gone(&uri);
    }
    let mut res = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE and ICE restarts are not supported: the server's candidates are in the answer",
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    res
}

/// `404` for a session URL the server does not know, saying where to POST instead.
fn gone(uri: &Uri) -> Response {
    let endpoint = uri.path().rsplit_once('/').map_or("", |(e, _)| e);
    error(
        StatusCode::NOT_FOUND,
        &format!(
            "no such session: it ended, or the server restarted; POST a new offer to {endpoint}"
        ),
    )
}

async fn preflight(method: Method) -> Response {
    let _ = method;
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, DELETE, PATCH, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    cors(res)
}

/// Lets players on other origins call these endpoints and read the session URL.
fn cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, Link, ETag, Accept-Patch"),
    );
    res
}

fn error(status: StatusCode, message: &str) -> Response {
    cors(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response(),
    )
}

/// The token of `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// A room name as one URL path segment.
fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_segments() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        assert_eq!(encode_segment("my room/1"), "my%20room%2F1");
    }
}
