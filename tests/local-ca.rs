//! lanrelay's own certificate authority, as a client sees it: the server certificate
//! verifies with rustls against the CA alone for every name and address the server is
//! reached by (and not for others), the private keys are private, and when the
//! addresses change the server certificate is re-issued from the same CA, so clients
//! that trusted the CA keep working; a running server renews a certificate near its
//! expiry by itself.
#![allow(clippy::disallowed_methods)] // tests and benchmarks read the clock

mod common;

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::fetch;
use lanrelay::Config;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};

/// Verifies `leaf_pem` for `name` the way a browser that trusts only `ca_pem` would.
fn verify(ca_pem: &str, leaf_pem: &str, name: &str) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes()).unwrap();
    verifier
        .verify_server_cert(
            &leaf,
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn server_certificate_verifies_for_every_name_and_address() {
    let dir = common::temp_dir("ca-names");
    let mut config = Config::loopback(dir.clone());
    config.hostnames = vec!["relay.test".into()];
    // Documentation addresses: put in the certificate and ICE candidates, never used.
    let advertised: Vec<IpAddr> = ["127.0.0.1", "192.0.2.10", "2001:db8::10"]
        .map(|s| s.parse().unwrap())
        .to_vec();
    config.advertise = advertised.clone();
    let server = lanrelay::start(config).await.unwrap();

    let ca = read(&dir, "ca.crt");
    let leaf = read(&dir, "server.crt");
    assert_eq!(server.cert_pem, ca, "clients are told to trust the CA");
    assert!(server.own_ca);

    let mut names: Vec<String> = vec!["localhost".into(), "::1".into(), "relay.test".into()];
    names.extend(advertised.iter().map(ToString::to_string));
    if let Some(h) = lanrelay::net::hostname().filter(|h| lanrelay::certs::names::is_dns_name(h)) {
        let first = h.split('.').next().unwrap().to_string();
        names.push(h.clone());
        names.push(format!("{first}.local"));
    }
    for name in &names {
        verify(&ca, &leaf, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    println!("verified against the CA for: {}", names.join(", "));
    for other in [
        "192.0.2.99",
        "10.1.2.3",
        "2001:db8::99",
        "example.com",
        "relay.test.example",
    ] {
        let err = verify(&ca, &leaf, other).expect_err(other);
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
                    | rustls::Error::InvalidCertificate(
                        rustls::CertificateError::NotValidForNameContext { .. }
                    )
            ),
            "{other}: {err:?}"
        );
    }

    // Over the wire, trusting only the CA.
    for name in ["127.0.0.1", "localhost", "relay.test", "::1"] {
        let r = fetch::https(server.https_addr, &ca, name, "/healthz")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, 200, "{name}");
    }
    let err = fetch::https(server.https_addr, &ca, "example.com", "/healthz")
        .await
        .expect_err("a name not in the certificate is refused");
    assert!(err.contains("not valid for name"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn private_keys_are_readable_by_the_owner_only() {
    let dir = common::temp_dir("ca-modes");
    let server = lanrelay::start(Config::loopback(dir.clone()))
        .await
        .unwrap();
    server.shutdown().await;
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("server.key")), 0o600);
    assert_eq!(mode(&dir.join("ca.crt")), 0o644);
    assert_eq!(mode(&dir.join("server.crt")), 0o644);
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(files, ["ca.crt", "ca.key", "server.crt", "server.key"]);
    let ca_key = read(&dir, "ca.key");
    assert!(ca_key.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[tokio::test]
async fn a_new_address_reissues_the_server_certificate_from_the_same_ca() {
    let dir = common::temp_dir("ca-reissue");
    let mut config = Config::loopback(dir.clone());
    config.advertise = vec!["127.0.0.1".parse().unwrap()];
    let first = lanrelay::start(config.clone()).await.unwrap();
    let trusted = first.cert_pem.clone();
    first.shutdown().await;
    let (ca, ca_key, leaf) = (
        read(&dir, "ca.crt"),
        read(&dir, "ca.key"),
        read(&dir, "server.crt"),
    );
    assert!(verify(&ca, &leaf, "192.0.2.20").is_err());

    // A new DHCP lease: the machine is now also at 192.0.2.20.
    config.advertise.push("192.0.2.20".parse().unwrap());
    let second = lanrelay::start(config.clone()).await.unwrap();
    let new_leaf = read(&dir, "server.crt");
    assert_ne!(new_leaf, leaf, "the server certificate was re-issued");
    assert_eq!(read(&dir, "ca.crt"), ca, "the CA is kept");
    assert_eq!(read(&dir, "ca.key"), ca_key, "the CA key is kept");
    assert_eq!(second.cert_pem, trusted);
    verify(&ca, &new_leaf, "192.0.2.20").unwrap();
    verify(&ca, &new_leaf, "127.0.0.1").unwrap();
    // A client that trusted the CA before the change connects as before.
    let r = fetch::https(second.https_addr, &trusted, "127.0.0.1", "/healthz")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    second.shutdown().await;

    // Nothing changed: nothing is re-issued.
    let third = lanrelay::start(config).await.unwrap();
    assert_eq!(read(&dir, "server.crt"), new_leaf);
    third.shutdown().await;
}

#[tokio::test]
async fn a_server_certificate_due_for_renewal_is_renewed_while_running() {
    let dir = common::temp_dir("ca-renew");
    let server = lanrelay::start(Config::loopback(dir.clone()))
        .await
        .unwrap();
    // Swap in a certificate from the same CA that expires in about two weeks, as if
    // the server had been running for a year.
    let ca =
        lanrelay::certs::Authority::load_or_create(&dir, None, time::OffsetDateTime::now_utc())
            .unwrap();
    let issued_long_ago = time::OffsetDateTime::now_utc() - time::Duration::days(380);
    let old = ca
        .issue(
            &["localhost".into(), "127.0.0.1".into()],
            None,
            issued_long_ago,
        )
        .unwrap();
    lanrelay::certs::Authority::write(&old, &dir.join("server.crt"), &dir.join("server.key"))
        .unwrap();
    let days_left = |pem: &str| {
        let s = lanrelay::certs::inspect::summarize_pem(pem).unwrap();
        (s.not_after - time::OffsetDateTime::now_utc()).whole_days()
    };
    assert!(days_left(&old.cert_pem) < 30);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let current = read(&dir, "server.crt");
        if current != old.cert_pem && days_left(&current) > 300 {
            break;
        }
        assert!(std::time::Instant::now() < end, "not renewed within 15 s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The renewed certificate is the one served, and it is from the same CA.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = fetch::https(
            server.https_addr,
            &server.cert_pem,
            "127.0.0.1",
            "/api/trust",
        )
        .await
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let names = v["server"]["names"].as_array().unwrap().len();
        // The swapped-in certificate had two names; the renewal covers them all again.
        if names > 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "renewed certificate not served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(read(&dir, "ca.crt"), server.cert_pem);
    server.shutdown().await;
}
