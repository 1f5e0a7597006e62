//! Clients that open a connection and never finish a request cannot pile up: on the
//! HTTPS port and the HTTP helper, a request's headers must arrive within
//! `--header-timeout`, or the server closes the connection; the server keeps serving
//! everyone else meanwhile.

#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::{Duration, Instant};

use common::{temp_dir, tls_client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Half a request: headers that never end.
const HALF: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n";

/// Waits for the server to close `conn`; how long it took, or `None` after `limit`.
async fn closed_within<S: AsyncReadExt + Unpin>(conn: &mut S, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            // A response (e.g. 408) is fine; the close must follow.
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn half_sent_requests_are_cut_off() {
    let mut config = lanrelay::Config::loopback(temp_dir("certs"));
    config.header_timeout = Duration::from_secs(1);
    let server = lanrelay::start(config).await.expect("server starts");
    let helper = server.http_addr.expect("the helper listens");

    // Twenty half requests to the helper, plain HTTP.
    let mut plain = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(helper).await.unwrap();
        c.write_all(HALF).await.unwrap();
        plain.push(c);
    }
    // Twenty to the HTTPS port, after a complete TLS handshake.
    let connector = tokio_rustls::TlsConnector::from(tls_client(&server));
    let mut tls = Vec::new();
    for _ in 0..20 {
        let tcp = TcpStream::connect(server.https_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = connector.connect(name, tcp).await.unwrap();
        c.write_all(HALF).await.unwrap();
        tls.push(c);
    }
    // Meanwhile the server answers a real request.
    let (status, _) = common::https_get(&server, "/healthz").await;
    assert_eq!(status, 200);
    for c in &mut plain {
        let t = closed_within(c, Duration::from_secs(5)).await;
        assert!(t.is_some(), "the helper closed a half-sent request");
    }
    for c in &mut tls {
        let t = closed_within(c, Duration::from_secs(5)).await;
        assert!(t.is_some(), "HTTPS closed a half-sent request");
    }
    server.shutdown().await;
}
