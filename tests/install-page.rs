//! The install page over HTTPS: the page and its script, the CA downloads with their
//! file names, `/api/trust` (the CA's name and fingerprints, the URLs to show), QR
//! codes as SVG with a length limit, and the start page's invite block.

mod common;

use common::{https_get, start_server};

#[tokio::test]
async fn install_page_downloads_and_qr_codes() {
    let server = start_server(8).await;
    let (status, body) = https_get(&server, "/trust").await;
    assert_eq!(status, 200);
    for platform in ["android", "xiaomi", "ios", "windows", "macos", "linux"] {
        assert!(
            body.contains(&format!("data-platform=\"{platform}\"")),
            "steps for {platform}"
        );
    }
    for href in ["/ca.crt", "/ca.cer", "/ca.mobileconfig"] {
        assert!(body.contains(&format!("href=\"{href}\"")), "{href} linked");
        assert_eq!(https_get(&server, href).await.0, 200, "{href}");
    }
    for path in [
        "/trust.js",
        "/trust.css",
        "/invite.js",
        "/i18n.js",
        "/lang/en.js",
        "/lang/zh-CN.js",
    ] {
        assert_eq!(https_get(&server, path).await.0, 200, "{path}");
    }
    let (_, index) = https_get(&server, "/").await;
    assert!(index.contains("id=\"invite\"") && index.contains("href=\"/trust\""));

    let (status, body) = https_get(&server, "/api/trust").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ca = &v["ca"];
    assert!(ca["name"].as_str().unwrap().starts_with("lanrelay CA"));
    assert_eq!(ca["sha256"].as_str().unwrap().len(), 95);
    assert_eq!(ca["sha1"].as_str().unwrap().len(), 59);
    assert_eq!(v["server"]["issuer"], ca["name"]);
    assert!(v["server"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "127.0.0.1"));
    assert_eq!(v["httpsUrls"][0], server.urls[0].as_str());

    let (status, svg) = https_get(
        &server,
        "/qr.svg?text=https%3A%2F%2F127.0.0.1%3A8443%2F%3Froom%3Dx",
    )
    .await;
    assert_eq!(status, 200);
    assert!(svg.contains("<svg") && svg.contains("<path"));
    let long = "x".repeat(lanrelay::qr::MAX_TEXT + 1);
    assert_eq!(
        https_get(&server, &format!("/qr.svg?text={long}")).await.0,
        400
    );
    assert_eq!(https_get(&server, "/qr.svg?text=").await.0, 400);
    assert_eq!(https_get(&server, "/qr.svg").await.0, 400);
    server.shutdown().await;
}
