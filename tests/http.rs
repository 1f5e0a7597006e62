//! The HTTPS surface: health check, the web app's files, unknown paths.

mod common;

use common::{https_get, start_server};

#[tokio::test]
async fn health_and_assets() {
    let server = start_server(8).await;
    let (status, body) = https_get(&server, "/healthz").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("healthz is JSON");
    assert_eq!(v["participants"], 0);

    let (status, body) = https_get(&server, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>lanrelay</title>"));
    for path in [
        "/app.js",
        "/session.js",
        "/signaling.js",
        "/autoplay.js",
        "/style.css",
        "/icon.svg",
    ] {
        assert_eq!(https_get(&server, path).await.0, 200, "{path}");
    }
    assert_eq!(https_get(&server, "/nope").await.0, 404);
    // The printed URL uses the real port.
    assert!(server
        .urls
        .iter()
        .any(|u| u.ends_with(&format!(":{}/", server.https_addr.port()))));
    server.shutdown().await;
}

#[tokio::test]
async fn certificate_is_reused_and_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::temp_dir("reuse");
    let mut config = lanrelay::Config::loopback(dir.clone());
    config.room_capacity = 2;
    let first = lanrelay::start(config.clone()).await.unwrap();
    let pem = first.cert_pem.clone();
    first.shutdown().await;
    let mode = std::fs::metadata(dir.join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = lanrelay::start(config).await.unwrap();
    assert_eq!(
        second.cert_pem, pem,
        "the certificate is reused on the next start"
    );
    second.shutdown().await;
}
