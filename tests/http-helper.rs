//! The plain-HTTP helper port: it redirects pages to HTTPS on the host name the
//! browser used (when it is one of the server's own), serves the CA certificate (PEM, DER, iOS profile) and the install
//! page to devices that do not trust lanrelay yet, and can be turned off.

mod common;

use base64::Engine;
use common::fetch;
use lanrelay::Config;
use rustls::pki_types::{pem::PemObject, CertificateDer};

#[tokio::test]
async fn redirects_pages_and_serves_the_ca() {
    let dir = common::temp_dir("helper");
    let server = lanrelay::start(Config::loopback(dir.clone()))
        .await
        .unwrap();
    let http = server.http_addr.expect("the helper listens");
    assert!(http.ip().is_loopback());
    assert_ne!(http.port(), 0);
    assert_ne!(http.port(), server.https_addr.port());
    let https_port = server.https_addr.port();

    // Pages go to HTTPS, same host, same path and query.
    let r = fetch::http(http, Some(&format!("127.0.0.1:{}", http.port())), "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{https_port}/").as_str())
    );
    let r = fetch::http(http, Some("localhost:8080"), "/?room=blue%20fox&name=A").await;
    assert_eq!(
        r.header("location"),
        Some(format!("https://localhost:{https_port}/?room=blue%20fox&name=A").as_str())
    );
    let r = fetch::http(http, Some("[::1]:8080"), "/app.js").await;
    assert_eq!(
        r.header("location"),
        Some(format!("https://[::1]:{https_port}/app.js").as_str())
    );
    // A Host header that is not a plain name, or not one of the server's own names
    // and addresses, goes to a known address instead: no open redirect.
    for host in [
        None,
        Some("evil.example/x"),
        Some("a b"),
        Some("evil.example"),
        Some("evil.example:8080"),
        Some("192.0.2.66:8080"),
        Some("[2001:db8::66]:8080"),
    ] {
        let r = fetch::http(http, host, "/").await;
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("location"),
            Some(format!("https://127.0.0.1:{https_port}/").as_str()),
            "{host:?}"
        );
    }

    // The CA, in each format, without TLS.
    let ca_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    let crt = fetch::http(http, Some("127.0.0.1"), "/ca.crt").await;
    assert_eq!(crt.status, 200);
    assert_eq!(
        crt.header("content-type"),
        Some("application/x-x509-ca-cert")
    );
    assert_eq!(
        crt.header("content-disposition"),
        Some("attachment; filename=\"lanrelay-ca.crt\"")
    );
    assert_eq!(crt.text(), ca_pem);
    assert_eq!(crt.text(), server.cert_pem);
    let cer = fetch::http(http, Some("127.0.0.1"), "/ca.cer").await;
    assert_eq!(cer.status, 200);
    assert_eq!(cer.body, ca_der.as_ref());
    let profile = fetch::http(http, Some("127.0.0.1"), "/ca.mobileconfig").await;
    assert_eq!(profile.status, 200);
    assert_eq!(
        profile.header("content-type"),
        Some("application/x-apple-aspen-config")
    );
    let text = profile.text();
    assert!(text.contains("<string>com.apple.security.root</string>"));
    let data: String = text
        .split("<data>")
        .nth(1)
        .and_then(|s| s.split("</data>").next())
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
        ca_der.as_ref()
    );

    // The install page and what it needs.
    for path in [
        "/trust",
        "/trust.js",
        "/trust.css",
        "/i18n.js",
        "/lang/en.js",
        "/lang/zh-CN.js",
        "/style.css",
        "/icon.svg",
    ] {
        assert_eq!(
            fetch::http(http, Some("127.0.0.1"), path).await.status,
            200,
            "{path}"
        );
    }
    assert!(fetch::http(http, Some("127.0.0.1"), "/trust")
        .await
        .text()
        .contains("Trust lanrelay"));
    let api = fetch::http(http, Some("127.0.0.1"), "/api/trust").await;
    let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    let sha256: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &ca_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(v["ca"]["sha256"], sha256.as_str());
    let trust_url = format!("http://127.0.0.1:{}/trust", http.port());
    assert_eq!(v["trustUrls"][0], trust_url.as_str());
    assert_eq!(server.trust_urls, [trust_url]);
    let qr = fetch::http(
        http,
        Some("127.0.0.1"),
        "/qr.svg?text=http%3A%2F%2F127.0.0.1%2Ftrust",
    )
    .await;
    assert_eq!(qr.status, 200);
    assert_eq!(qr.header("content-type"), Some("image/svg+xml"));
    server.shutdown().await;
}

#[tokio::test]
async fn the_helper_can_be_turned_off() {
    let mut config = Config::loopback(common::temp_dir("helper-off"));
    config.http_listen = None;
    let server = lanrelay::start(config).await.unwrap();
    assert_eq!(server.http_addr, None);
    assert!(server.trust_urls.is_empty());
    // The install page still works over HTTPS.
    let (status, body) = common::https_get(&server, "/trust").await;
    assert_eq!(status, 200);
    assert!(body.contains("Trust lanrelay"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_taken_helper_port_does_not_stop_the_server() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = Config::loopback(common::temp_dir("helper-taken"));
    config.http_listen = Some(taken.local_addr().unwrap());
    let server = lanrelay::start(config).await.unwrap();
    assert_eq!(server.http_addr, None);
    assert_eq!(common::https_get(&server, "/healthz").await.0, 200);
    server.shutdown().await;
}
