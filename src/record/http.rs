//! Recording over HTTPS. For the operator (`--operator-token`, as a bearer header or
//! `?token=`): `POST /api/rooms/ROOM/recording` starts recording a room and `DELETE`
//! stops it. For the operator, or a room's host (its key, in the cookies the call
//! page set, see [`super::access`]): `GET /recordings` is the listing page (HTML;
//! JSON with `Accept: application/json` or `?format=json`: name, size, duration,
//! URL), with only the host's rooms' files for a host, and `GET /recordings/FILE`
//! downloads or plays one (`video/webm`, with HTTP range requests so that a
//! browser's player can seek). Without either, each answers 401; with no operator
//! token set on the server, only hosts may.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::api::Audience;
use crate::sfu::shard::RecordError;
use crate::state::{AppState, Caller};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/rooms/{name}/recording",
            post(start).delete(stop).get(status),
        )
        .route("/recordings", get(list))
        .route("/recordings/{file}", get(download))
}

/// Whose recordings a request may see.
#[derive(Debug, Clone, PartialEq)]
enum Reader {
    /// Every file.
    Operator,
    /// The files of these rooms (the caller hosts, or last hosted, them).
    Host(Vec<String>),
}

impl Reader {
    fn may_read(&self, file: &str) -> bool {
        match self {
            Reader::Operator => true,
            Reader::Host(rooms) => rooms.iter().any(|r| super::of_room(file, r)),
        }
    }
}

/// The operator, or the host of the rooms whose keys the request's cookies hold;
/// else the 401 to answer.
fn reader(
    state: &AppState,
    audience: &Audience,
    headers: &HeaderMap,
) -> Result<Reader, Box<Response>> {
    if *audience == Audience::Operator {
        return Ok(Reader::Operator);
    }
    let keys = super::access::keys_in_cookies(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let rooms = state.record_access.rooms_for(&keys);
    if !rooms.is_empty() {
        return Ok(Reader::Host(rooms));
    }
    let mut res = (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "error": "the recordings are for the operator (Authorization: Bearer TOKEN) \
                      and for each room's host (open them from the call page)"
        })),
    )
        .into_response();
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(Box::new(res))
}

/// 401 unless the caller gave the operator token.
fn operator_only(audience: &Audience) -> Result<(), Box<Response>> {
    if *audience == Audience::Operator {
        return Ok(());
    }
    let mut res = (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "error": "recording needs the operator token (Authorization: Bearer TOKEN)"
        })),
    )
        .into_response();
    res.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(Box::new(res))
}

async fn start(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Caller(audience): Caller,
) -> Response {
    set(state, room, audience, true).await
}

async fn stop(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Caller(audience): Caller,
) -> Response {
    set(state, room, audience, false).await
}

async fn set(state: AppState, room: String, audience: Audience, on: bool) -> Response {
    if let Err(res) = operator_only(&audience) {
        return *res;
    }
    match state.engine.recording(&room, on, None).await {
        Ok(changed) => {
            Json(json!({"room": room, "recording": on, "changed": changed})).into_response()
        }
        Err(e) => {
            let status = match e {
                RecordError::NoRoom => StatusCode::NOT_FOUND,
                RecordError::Direct => StatusCode::CONFLICT,
                RecordError::Off => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

/// Whether the room is being recorded (`recording`: the files being written).
async fn status(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Caller(audience): Caller,
) -> Response {
    if let Err(res) = operator_only(&audience) {
        return *res;
    }
    match state.engine.rooms().await {
        Some(rooms) => match rooms.iter().find(|r| r.name == room) {
            Some(r) => Json(json!({"room": room, "recording": r.recording})).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such room"})),
            )
                .into_response(),
        },
        None => (StatusCode::SERVICE_UNAVAILABLE, "media engine stopped").into_response(),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
struct ListQuery {
    format: Option<String>,
}

/// The listing page (the files come from its JSON), or the JSON itself.
async fn list(
    State(state): State<AppState>,
    Caller(audience): Caller,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let json = q.format.as_deref() == Some("json")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
    let who = reader(&state, &audience, &headers);
    if !json {
        // The page itself holds nothing: it asks for the JSON, and says what the
        // server answers.
        let status = match who {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::UNAUTHORIZED,
        };
        return (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            PAGE,
        )
            .into_response();
    }
    let who = match who {
        Ok(w) => w,
        Err(res) => return *res,
    };
    let dir = state.record_dir.clone();
    let writing = state.record_stats.writing();
    let files = tokio::task::spawn_blocking(move || crate::record::files::list(&dir, &writing))
        .await
        .unwrap_or_default();
    let files: Vec<_> = files
        .into_iter()
        .filter(|f| who.may_read(&f.name))
        .collect();
    let rooms = match &who {
        Reader::Operator => None,
        Reader::Host(rooms) => Some(rooms.clone()),
    };
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(json!({"files": files, "operator": rooms.is_none(), "rooms": rooms})),
    )
        .into_response()
}

/// The listing page (web/recordings.html), served at `/recordings`.
const PAGE: &[u8] = include_bytes!("../../web/recordings.html");
/// Where the listing page is in `web/`, for the check that every file there is served.
#[cfg(test)]
pub(crate) const PAGE_FILE: &str = "/recordings.html";

async fn download(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Caller(audience): Caller,
    headers: HeaderMap,
) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such recording"})),
        )
    };
    let who = match reader(&state, &audience, &headers) {
        Ok(w) => w,
        Err(res) => return *res,
    };
    // Another room's file is, for this host, no file at all.
    if !who.may_read(&file) {
        return not_found().into_response();
    }
    let Some(path) = crate::record::files::find(&state.record_dir, &file) else {
        return not_found().into_response();
    };
    let Ok(mut f) = tokio::fs::File::open(&path).await else {
        return not_found().into_response();
    };
    let Ok(len) = f.metadata().await.map(|m| m.len()) else {
        return not_found().into_response();
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, len));
    let (status, start, end) = match range {
        None | Some(Range::Ignored) => (StatusCode::OK, 0, len),
        Some(Range::Bytes(start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(Range::Unsatisfiable) => {
            let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return res;
        }
    };
    if start > 0 {
        use tokio::io::AsyncSeekExt;
        if f.seek(std::io::SeekFrom::Start(start)).await.is_err() {
            return not_found().into_response();
        }
    }
    use tokio::io::AsyncReadExt;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f.take(end - start)));
    let mut res = (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("video/webm")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        ],
        body,
    )
        .into_response();
    res.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    res
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Bytes `start..end` (end exclusive).
    Bytes(u64, u64),
    /// Nothing of the file: 416.
    Unsatisfiable,
    /// Not a single byte range this server serves (another unit, several ranges, a
    /// malformed one): the whole file, as RFC 9110 allows.
    Ignored,
}

/// Parses `bytes=A-B`, `bytes=A-` and `bytes=-N` (one range; browsers' players ask
/// for no more).
fn parse_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Ignored;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // The last N bytes.
        (true, false) => match parse(b) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Bytes(len.saturating_sub(n), len),
            Some(_) => Range::Unsatisfiable,
            None => Range::Ignored,
        },
        (false, _) => {
            let Some(start) = parse(a) else {
                return Range::Ignored;
            };
            let last = match b.is_empty() {
                true => len.saturating_sub(1),
                false => match parse(b) {
                    Some(last) if last >= start => last.min(len.saturating_sub(1)),
                    _ => return Range::Ignored,
                },
            };
            if start >= len {
                return Range::Unsatisfiable;
            }
            Range::Bytes(start, last + 1)
        }
        (true, true) => Range::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Range::Bytes(0, 100));
        assert_eq!(parse_range("bytes=500-", 1000), Range::Bytes(500, 1000));
        assert_eq!(parse_range("bytes=-100", 1000), Range::Bytes(900, 1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Range::Bytes(0, 1000));
        assert_eq!(parse_range("bytes=990-2000", 1000), Range::Bytes(990, 1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Range::Ignored);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 1000), Range::Ignored);
        assert_eq!(parse_range("bytes=x-", 1000), Range::Ignored);
        assert_eq!(parse_range("bytes=-", 1000), Range::Ignored);
    }
}
