//! Two nodes of a cluster (NATS on 127.0.0.1) asked to open the same room at the same
//! instant: exactly one becomes its origin (the rooms bucket's create-only write), the
//! other sends its participant there with `redirect`, and a WHIP publisher with `307`.
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::Duration;

use common::cluster::{start_node, wait_for_nodes, Nats};
use common::{connect_ws, recv, send, tls_client};
use lanrelay::signaling::protocol::{ClientMsg, Role, ServerMsg};
use lanrelay::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn url_of(s: &Server) -> String {
    format!("https://127.0.0.1:{}", s.https_addr.port())
}

/// Joins `room` as a participant and returns the first answer.
async fn first_answer(ws: &mut common::Ws, room: &str) -> Option<ServerMsg> {
    send(
        ws,
        &ClientMsg::Join {
            room: room.into(),
            name: "p".into(),
            role: Role::Participant,
            mode: Default::default(),
            token: None,
            host_token: None,
        },
    )
    .await;
    recv(ws).await
}

/// POSTs `body` to `path` on `server`; returns the response head.
async fn post(server: &Server, path: &str, body: &str) -> String {
    let connector = tokio_rustls::TlsConnector::from(tls_client(server));
    let tcp = tokio::net::TcpStream::connect(server.https_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    text.split_once("\r\n\r\n")
        .map_or(text.clone(), |(h, _)| h.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_a_room_make_one_origin() {
    let nats = Nats::start();
    let a = start_node(&nats, "a", 100).await;
    let b = start_node(&nats, "b", 100).await;
    wait_for_nodes(&[&a, &b], 2).await;

    let mut held = Vec::new();
    for i in 0..6 {
        let room = format!("race-{i}");
        let (mut wa, mut wb) = (connect_ws(&a).await, connect_ws(&b).await);
        // Both joins leave at once.
        let (ra, rb) = tokio::join!(first_answer(&mut wa, &room), first_answer(&mut wb, &room));
        let (winner, loser, redirect) = match (&ra, &rb) {
            (Some(ServerMsg::Joined { .. }), Some(ServerMsg::Redirect { url })) => (&a, &b, url),
            (Some(ServerMsg::Redirect { url }), Some(ServerMsg::Joined { .. })) => (&b, &a, url),
            other => panic!("{room}: expected one joined and one redirect, got {other:?}"),
        };
        assert_eq!(
            redirect,
            &url_of(winner),
            "{room}: the redirect names the origin"
        );
        let origin = winner.engine.cluster().unwrap().figures();
        let other = loser.engine.cluster().unwrap().figures();
        assert!(origin.origin_of.contains(&room), "{room}: {origin:?}");
        assert!(!other.origin_of.contains(&room), "{room}: {other:?}");
        println!(
            "{room}: origin {}, redirected from {}",
            origin.node, other.node
        );

        // A WHIP publisher that reaches the other node is sent to the origin.
        let head = post(loser, &format!("/whip/{room}"), "v=0\r\n").await;
        assert!(head.starts_with("HTTP/1.1 307"), "{room}: {head}");
        let location = format!("location: {}/whip/{room}", url_of(winner));
        assert!(
            head.to_ascii_lowercase().contains(&location),
            "{room}: {head}"
        );
        held.push(wa);
        held.push(wb);
    }
    let metrics = common::https_get(&a, "/metrics").await.1;
    assert!(metrics.contains("lanrelay_placements_total{decision=\"origin\"}"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.shutdown().await;
    b.shutdown().await;
}
