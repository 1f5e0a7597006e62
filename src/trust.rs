//! What a device needs to trust lanrelay, served on HTTPS and on the plain-HTTP
//! helper alike: the CA certificate as PEM (`/ca.crt`), DER (`/ca.cer`) and an iOS
//! configuration profile (`/ca.mobileconfig`); `/api/trust` with its name and
//! fingerprints and the URLs the install page shows; `/qr.svg` to draw QR codes.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::certs::inspect::{format_date, CertSummary};
use crate::certs::{mobileconfig, Authority};
use crate::qr;

/// What the install page shows and offers.
pub(crate) struct TrustInfo {
    /// lanrelay's CA, when the server certificate is issued by it.
    pub(crate) ca: Option<CaFiles>,
    /// The certificate being served (changes on reload).
    pub(crate) server: Arc<RwLock<CertSummary>>,
    /// The HTTPS URLs of the web app.
    pub(crate) https_urls: Vec<String>,
    /// The install page on the plain-HTTP helper; empty when the helper is off.
    pub(crate) trust_urls: Vec<String>,
}

/// The CA certificate in the formats devices take.
pub(crate) struct CaFiles {
    pub(crate) pem: String,
    pub(crate) der: Vec<u8>,
    pub(crate) mobileconfig: String,
    pub(crate) summary: CertSummary,
}

impl CaFiles {
    pub(crate) fn new(ca: &Authority) -> Self {
        CaFiles {
            pem: ca.cert_pem.clone(),
            der: ca.cert_der.to_vec(),
            mobileconfig: mobileconfig::profile(&ca.cert_der, &ca.summary.subject),
            summary: ca.summary.clone(),
        }
    }
}

/// The routes, for the HTTPS router and the helper's.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(info: Arc<TrustInfo>) -> Router<S> {
    Router::new()
        .route("/ca.crt", get(ca_pem))
        .route("/ca.cer", get(ca_der))
        .route("/ca.mobileconfig", get(ca_profile))
        .route("/api/trust", get(api))
        .route("/qr.svg", get(qr::svg_endpoint))
        .with_state(info)
}

const NO_CA: &str = "This lanrelay serves a certificate of its own (--cert), so it has no \
                     lanrelay certificate authority to install.";

/// A file to save: its type, `Content-Disposition` and body.
fn download(mime: &'static str, disposition: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

async fn ca_pem(State(info): State<Arc<TrustInfo>>) -> Response {
    match &info.ca {
        Some(ca) => download(
            "application/x-x509-ca-cert",
            "attachment; filename=\"lanrelay-ca.crt\"",
            ca.pem.clone().into_bytes(),
        ),
        None => (StatusCode::NOT_FOUND, NO_CA).into_response(),
    }
}

async fn ca_der(State(info): State<Arc<TrustInfo>>) -> Response {
    match &info.ca {
        Some(ca) => download(
            "application/x-x509-ca-cert",
            "attachment; filename=\"lanrelay-ca.cer\"",
            ca.der.clone(),
        ),
        None => (StatusCode::NOT_FOUND, NO_CA).into_response(),
    }
}

async fn ca_profile(State(info): State<Arc<TrustInfo>>) -> Response {
    match &info.ca {
        Some(ca) => download(
            "application/x-apple-aspen-config",
            "attachment; filename=\"lanrelay.mobileconfig\"",
            ca.mobileconfig.clone().into_bytes(),
        ),
        None => (StatusCode::NOT_FOUND, NO_CA).into_response(),
    }
}

/// `/api/trust`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TrustJson {
    ca: Option<CertJson>,
    server: CertJson,
    https_urls: Vec<String>,
    trust_urls: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CertJson {
    name: String,
    issuer: String,
    names: Vec<String>,
    sha256: String,
    sha1: String,
    not_after: String,
}

impl From<&CertSummary> for CertJson {
    fn from(s: &CertSummary) -> Self {
        CertJson {
            name: s.subject.clone(),
            issuer: s.issuer.clone(),
            names: s.names.clone(),
            sha256: s.sha256.clone(),
            sha1: s.sha1.clone(),
            not_after: format_date(s.not_after),
        }
    }
}

async fn api(State(info): State<Arc<TrustInfo>>) -> Response {
    let server = match info.server.read() {
        Ok(s) => CertJson::from(&*s),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Json(TrustJson {
            ca: info.ca.as_ref().map(|c| CertJson::from(&c.summary)),
            server,
            https_urls: info.https_urls.clone(),
            trust_urls: info.trust_urls.clone(),
        }),
    )
        .into_response()
}
