//! `--cert FILE --key FILE`: the server presents that certificate (and makes no CA),
//! and picks up new files without a restart; files that do not load (garbage, a key
//! of another certificate) are refused and the previous certificate stays in use.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fetch;
use lanrelay::config::CustomCert;
use lanrelay::Config;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed(cn: &str) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

/// Replaces a file the way most tools do: write a new one, rename it over the old.
fn replace(path: &Path, data: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits until a client trusting only `pem` gets through (the server presents it).
async fn served(server: &lanrelay::Server, pem: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if fetch::https(server.https_addr, pem, "127.0.0.1", "/healthz")
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn own_certificate_is_served_and_reloaded_when_it_changes() {
    let dir = common::temp_dir("custom");
    let certs_dir = dir.join("certs");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let (a_cert, a_key) = self_signed("first");
    std::fs::write(&cert_path, &a_cert).unwrap();
    std::fs::write(&key_path, &a_key).unwrap();
    let mut config = Config::loopback(certs_dir.clone());
    config.custom_cert = Some(CustomCert {
        cert: cert_path.clone(),
        key: key_path.clone(),
    });
    let server = lanrelay::start(config).await.unwrap();
    assert!(!server.own_ca);
    assert_eq!(
        server.cert_pem, a_cert,
        "clients are told to trust the given chain"
    );
    assert!(served(&server, &a_cert).await);
    assert!(!certs_dir.join("ca.crt").exists(), "no CA is made");
    let ca = fetch::https(server.https_addr, &a_cert, "127.0.0.1", "/ca.crt")
        .await
        .unwrap();
    assert_eq!(ca.status, 404, "there is no lanrelay CA to download");
    let api = fetch::https(server.https_addr, &a_cert, "127.0.0.1", "/api/trust")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert!(v["ca"].is_null());
    assert_eq!(v["server"]["name"], "first");

    // Renewed by its tool: key and certificate replaced one after the other.
    let (b_cert, b_key) = self_signed("second");
    replace(&key_path, &b_key);
    replace(&cert_path, &b_cert);
    let t0 = Instant::now();
    assert!(
        served(&server, &b_cert).await,
        "the new certificate is served"
    );
    println!(
        "new certificate served {} ms after the change",
        t0.elapsed().as_millis()
    );
    assert!(
        fetch::https(server.https_addr, &a_cert, "127.0.0.1", "/healthz")
            .await
            .is_err(),
        "the old one is no longer presented"
    );
    let api = fetch::https(server.https_addr, &b_cert, "127.0.0.1", "/api/trust")
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(
        v["server"]["name"], "second",
        "the install page sees it too"
    );

    // Written in place, without a rename: picked up as well.
    let (c_cert, c_key) = self_signed("third");
    std::fs::write(&key_path, &c_key).unwrap();
    std::fs::write(&cert_path, &c_cert).unwrap();
    assert!(served(&server, &c_cert).await, "rewritten in place");

    // Garbage, then a certificate with another certificate's key: both refused, the
    // last good certificate stays.
    replace(&cert_path, "not a certificate");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(served(&server, &c_cert).await);
    let (d_cert, _) = self_signed("fourth");
    replace(&cert_path, &d_cert);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(served(&server, &c_cert).await, "a key mismatch is refused");
    assert!(
        fetch::https(server.https_addr, &d_cert, "127.0.0.1", "/healthz")
            .await
            .is_err()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_missing_custom_file_stops_the_start_with_its_name() {
    let dir = common::temp_dir("custom-missing");
    let mut config = Config::loopback(dir.join("certs"));
    config.custom_cert = Some(CustomCert {
        cert: dir.join("nope.pem"),
        key: dir.join("nope.key"),
    });
    let err = match lanrelay::start(config).await {
        Ok(_) => panic!("started without its certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("nope.pem"), "{err}");
}
