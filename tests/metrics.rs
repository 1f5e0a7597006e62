//! `GET /metrics` answers in the Prometheus text format, and its counters move when
//! two participants call each other through the server.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{https_get, start_server, TestPeer};
use str0m::media::MediaKind;

/// Parses the text format into `name{labels}` → value, checking each line's shape.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.split_whitespace();
            let what = words.next().unwrap();
            assert!(matches!(what, "HELP" | "TYPE"), "comment line: {line}");
            if what == "TYPE" {
                let kind = words.nth(1).unwrap();
                assert!(matches!(kind, "counter" | "gauge"), "type: {line}");
            }
            continue;
        }
        let (name, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value.parse().expect("numeric value");
        samples.insert(name.to_string(), value);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_text_format_and_counters_move() {
    let server = start_server(8).await;
    let (status, body) = https_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    let before = parse(&body);
    assert_eq!(before["lanrelay_participants"], 0.0);
    assert_eq!(before["lanrelay_forwarded_packets_total"], 0.0);
    assert!(before.contains_key("lanrelay_worker_busy_seconds_total{worker=\"0\"}"));

    let alice = TestPeer::join(&server, "metrics", "alice").await;
    let bob = TestPeer::join(&server, "metrics", "bob").await;
    bob.wait_for("alice's media", Duration::from_secs(15), |s| {
        s.frames
            .get(&("alice".into(), MediaKind::Video))
            .copied()
            .unwrap_or(0)
            >= 20
    })
    .await;

    let (status, body) = https_get(&server, "/metrics").await;
    assert_eq!(status, 200);
    let during = parse(&body);
    assert_eq!(during["lanrelay_rooms"], 1.0);
    assert_eq!(during["lanrelay_participants"], 2.0);
    let packets = during["lanrelay_forwarded_packets_total"];
    let bytes = during["lanrelay_forwarded_bytes_total"];
    assert!(packets >= 20.0, "forwarded packets: {packets}");
    // Each test video frame is 3000 bytes, so bytes grow much faster than packets.
    assert!(bytes >= packets * 50.0, "forwarded bytes: {bytes}");
    let busy = during["lanrelay_worker_busy_seconds_total{worker=\"0\"}"];
    assert!(busy > 0.0 && busy < 60.0, "busy seconds: {busy}");

    alice.leave().await;
    bob.leave().await;
    server.shutdown().await;
}
