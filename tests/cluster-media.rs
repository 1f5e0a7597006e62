//! Three nodes of a cluster (NATS on 127.0.0.1): a publisher on node A, viewers that
//! connect to B and C. B and C serve them as edges over one relay link each from A;
//! every viewer receives the publisher's audio and video, and A sends each packet
//! once per edge, not once per viewer (its counters).
#![allow(clippy::disallowed_methods)] // tests read the clock

mod common;

use std::time::Duration;

use common::cluster::{start_node, wait_for_nodes, Nats};
use common::TestPeer;
use lanrelay::signaling::protocol::Role;
use str0m::media::MediaKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_on_two_edges_receive_a_publisher_on_the_origin() {
    let nats = Nats::start();
    let a = start_node(&nats, "a", 100).await;
    let b = start_node(&nats, "b", 100).await;
    let c = start_node(&nats, "c", 100).await;
    wait_for_nodes(&[&a, &b, &c], 3).await;

    let publisher = TestPeer::join(&a, "talk", "pub").await;
    let mut viewers = Vec::new();
    for (i, node) in [&b, &c, &b, &c].into_iter().enumerate() {
        viewers.push(TestPeer::join_as(node, "talk", &format!("v{i}"), Role::Viewer).await);
    }
    for v in &viewers {
        v.wait_for("video from the publisher", Duration::from_secs(20), |s| {
            common::video_from(s, "pub") >= 30
        })
        .await;
        v.wait_for("audio from the publisher", Duration::from_secs(5), |s| {
            s.frames
                .get(&("pub".to_string(), MediaKind::Audio))
                .is_some_and(|n| *n >= 30)
        })
        .await;
    }
    let sa = a.engine.status().await.unwrap();
    let sb = b.engine.status().await.unwrap();
    let sc = c.engine.status().await.unwrap();
    println!(
        "A: {} relayed on {} links, {} forwarded; B: {} forwarded, {} links; C: {} forwarded, {} links",
        sa.relayed_packets,
        sa.relay_links,
        sa.forwarded_packets,
        sb.forwarded_packets,
        sb.relay_links,
        sc.forwarded_packets,
        sc.relay_links
    );
    assert_eq!(sa.relay_links, 2, "the origin holds one link per edge");
    assert_eq!((sb.relay_links, sc.relay_links), (1, 1));
    assert_eq!(sa.forwarded_packets, 0, "no viewer is served by the origin");
    // Each edge forwards each relayed packet to its two viewers: the origin sent
    // about half as many packets as the edges forwarded, not twice as many.
    let edges = sb.forwarded_packets + sc.forwarded_packets;
    assert!(
        sa.relayed_packets * 3 < edges * 2,
        "A relayed {} packets, the edges forwarded {edges}: once per edge, not per viewer",
        sa.relayed_packets
    );
    let rooms = common::https_get(&a, "/api/rooms").await.1;
    assert!(rooms.contains("\"edges\""), "{rooms}");

    for v in viewers {
        v.leave().await;
    }
    // The edges close their links once their last viewer left.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let links = a.engine.status().await.unwrap().relay_links;
        if links == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "A still holds {links} links"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publisher.leave().await;
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}
