//! The plain-HTTP helper port (TCP 8080 by default). A device that does not trust
//! lanrelay's CA yet fetches the CA and the install page here without any warning;
//! every other request is redirected to the HTTPS site, at the same host name when
//! that name is one of the server's own (else at a known address: a redirect must not
//! send a browser to whatever host a request named).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::http::asset_response;
use crate::trust::{self, TrustInfo};

/// The web app's files the helper serves itself (the install page, its look and its
/// languages).
const PAGES: &[&str] = &[
    "/trust",
    "/trust.html",
    "/trust.js",
    "/trust.css",
    "/i18n.js",
    "/lang/en.js",
    "/lang/zh-CN.js",
    "/style.css",
    "/icon.svg",
];

#[derive(Clone)]
struct Target {
    https_port: u16,
    /// Host for the redirect when the request names none usable.
    fallback_host: String,
    /// The names and addresses the server is reached by (those its certificate
    /// covers): the only hosts a redirect keeps.
    own_names: Arc<[String]>,
}

/// The helper's routes: the CA downloads and install page, else a redirect to
/// `https_port` on the request's host when it is in `own_names`, else on
/// `fallback_host`.
pub(crate) fn router(
    trust: Arc<TrustInfo>,
    https_port: u16,
    fallback_host: String,
    own_names: Vec<String>,
) -> Router {
    trust::router(trust)
        .fallback(page_or_redirect)
        .with_state(Target {
            https_port,
            fallback_host,
            own_names: own_names.into(),
        })
}

async fn page_or_redirect(State(t): State<Target>, headers: HeaderMap, uri: Uri) -> Response {
    if PAGES.contains(&uri.path()) {
        if let Some(r) = asset_response(uri.path()) {
            return r;
        }
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = https_location(host, path, t.https_port, &t.fallback_host, &t.own_names);
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// `https://HOST:PORT/path?query` for a request that came with `Host: host`. The host
/// is kept when it is one of `own_names` (a DNS name, any case, or an IP address), so
/// the browser stays on the name it used and the certificate covers it; anything else
/// falls back, so that a forged Host header cannot make this server send a browser
/// to someone else's site.
pub(crate) fn https_location(
    host: Option<&str>,
    path_and_query: &str,
    https_port: u16,
    fallback_host: &str,
    own_names: &[String],
) -> String {
    let name = host
        .and_then(host_without_port)
        .filter(|n| is_own(n, own_names))
        .unwrap_or(fallback_host);
    let path = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    if https_port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{https_port}{path}")
    }
}

/// Whether `name` (from [`host_without_port`]; IPv6 in brackets) is one of
/// `own_names`. Addresses are compared parsed, so `[::1]` is `0:0:0:0:0:0:0:1`.
fn is_own(name: &str, own_names: &[String]) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    match bare.parse::<IpAddr>() {
        Ok(ip) => own_names.iter().any(|o| o.parse::<IpAddr>() == Ok(ip)),
        Err(_) => own_names.iter().any(|o| o.eq_ignore_ascii_case(bare)),
    }
}

/// The host part of a Host header: `[v6]` with brackets, an IPv4 address or a DNS
/// name; `None` for anything else.
fn host_without_port(h: &str) -> Option<&str> {
    let name = if h.starts_with('[') {
        let end = h.find(']')?;
        let rest = &h[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':')?.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        let inner = &h[1..end];
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        &h[..=end]
    } else {
        let name = match h.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            Some(_) => return None,
            None => h,
        };
        if !crate::certs::names::is_dns_name(name) {
            return None;
        }
        name
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_host_and_path() {
        let own: Vec<String> = ["localhost", "box", "box.local", "192.0.2.9", "fd00::2"]
            .map(String::from)
            .to_vec();
        let loc = |h: Option<&str>, p: &str| https_location(h, p, 8443, "192.0.2.1", &own);
        assert_eq!(loc(Some("192.0.2.9:8080"), "/"), "https://192.0.2.9:8443/");
        assert_eq!(
            loc(Some("box.local:8080"), "/?room=a&name=b"),
            "https://box.local:8443/?room=a&name=b"
        );
        assert_eq!(loc(Some("box"), "/x"), "https://box:8443/x");
        assert_eq!(loc(Some("BOX.Local"), "/"), "https://BOX.Local:8443/");
        assert_eq!(loc(Some("[fd00::2]:8080"), "/"), "https://[fd00::2]:8443/");
        assert_eq!(loc(Some("[fd00::2]"), "/"), "https://[fd00::2]:8443/");
        assert_eq!(
            loc(Some("[fd00:0::2]"), "/"),
            "https://[fd00:0::2]:8443/",
            "the same address, written differently"
        );
        // Unusable hosts, and hosts that are not this server's, fall back to a known
        // address.
        for bad in [
            None,
            Some(""),
            Some("evil.example/x"),
            Some("a@b"),
            Some("[zz]:1"),
            Some("[::1]x"),
            Some("h:port"),
            Some("evil.example"),
            Some("evil.example:8080"),
            Some("box.evil.example"),
            Some("192.0.2.10:8080"),
            Some("[fd00::3]"),
        ] {
            assert_eq!(loc(bad, "/"), "https://192.0.2.1:8443/", "{bad:?}");
        }
        assert_eq!(
            https_location(Some("box"), "/", 443, "x", &own),
            "https://box/"
        );
        assert_eq!(loc(Some("box"), "*"), "https://box:8443/");
    }
}
