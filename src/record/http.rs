//! Recording over HTTPS, for the operator (`--operator-token`, as a bearer header or
//! `?token=`): `POST /api/rooms/ROOM/recording` starts recording a room and `DELETE`
//! stops it; `GET /recordings` lists the files (name, size, duration, URL) and
//! `GET /recordings/FILE` downloads or plays one (`video/webm`). Without the token
//! each answers 401; with no operator token set on the server, nobody may.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
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

async fn list(State(state): State<AppState>, Caller(audience): Caller) -> Response {
    if let Err(res) = operator_only(&audience) {
        return *res;
    }
    let dir = state.record_dir.clone();
    let writing = state.record_stats.writing();
    let files = tokio::task::spawn_blocking(move || crate::record::files::list(&dir, &writing))
        .await
        .unwrap_or_default();
    Json(json!({"files": files})).into_response()
}

async fn download(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Caller(audience): Caller,
) -> Response {
    if let Err(res) = operator_only(&audience) {
        return *res;
    }
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such recording"})),
        )
    };
    let Some(path) = crate::record::files::find(&state.record_dir, &file) else {
        return not_found().into_response();
    };
    let Ok(f) = tokio::fs::File::open(&path).await else {
        return not_found().into_response();
    };
    let len = f.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    let mut res = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("video/webm")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response();
    if let Some(len) = len {
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    res
}
