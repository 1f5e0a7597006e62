//! Where a newcomer to a room is served, decided from what NATS holds: the room's
//! entry (its origin node, if any) and the live nodes with their loads. Sans-IO: the
//! shell (`cluster::nats`) reads the buckets, asks [`decide`], and carries out the
//! answer (a create-only or compare-and-swap write when this node should become the
//! origin), asking again when the write loses a race.

use serde::{Deserialize, Serialize};

/// One node as the nodes bucket shows it (refreshed every few seconds; an entry that
/// stops being refreshed expires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    /// The node's name (`--node-name`), unique in the cluster.
    pub name: String,
    /// Where browsers and players reach it: `https://HOST:PORT`.
    pub url: String,
    /// Viewers it serves (its own and as an edge).
    pub viewers: usize,
    /// Participants and WHIP publishers it serves.
    pub participants: usize,
    /// Relay links it holds (as origin and as edge).
    pub links: usize,
    /// Busy share of its media workers, 0 to 1 (the busiest worker).
    pub cpu: f64,
    /// Media it sends, bits per second.
    pub egress_bps: u64,
}

/// A room's entry in the rooms bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// The node that serves the room's participants and publishers.
    pub origin: String,
    /// The entry's revision: replacing a dead origin is a compare-and-swap on it.
    pub revision: u64,
}

/// Who arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A participant or a WHIP publisher: served by the room's origin.
    Participant,
    /// A browser viewer or a WHEP player: may be served by any node.
    Viewer,
}

/// What [`decide`] is told.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// This node's name.
    pub me: &'a str,
    pub arrival: Arrival,
    /// The room's entry, `None` when no node has opened it.
    pub entry: Option<&'a RoomEntry>,
    /// The live nodes (this one included when its heartbeat is in).
    pub nodes: &'a [NodeLoad],
    /// Viewers of this room this node serves already.
    pub room_viewers_here: usize,
    /// An origin serves this many viewers of a room itself before sending further
    /// ones to edge nodes (`--edge-after`).
    pub edge_after: usize,
}

/// What to do with the newcomer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open the room here: write the entry create-only (`revision` `None`) or replace
    /// a dead origin's entry (compare-and-swap on `revision`); serve here if the write
    /// wins, decide again if it loses.
    Claim { revision: Option<u64> },
    /// This node is the room's origin: serve here.
    Origin,
    /// Serve the viewer here, relayed from the room's origin `origin`.
    Edge { origin: String },
    /// Send the newcomer to another node (its URL).
    Redirect { node: String, url: String },
}

/// Decides where the newcomer goes.
pub fn decide(i: &Inputs<'_>) -> Decision {
    let Some(entry) = i.entry else {
        return Decision::Claim { revision: None };
    };
    let origin = i.nodes.iter().find(|n| n.name == entry.origin);
    if entry.origin == i.me {
        // Ours (our own heartbeat may not be in yet, or may have lapsed).
        return match i.arrival {
            Arrival::Viewer if i.room_viewers_here >= i.edge_after => {
                match least_loaded(i.nodes, &entry.origin) {
                    Some(n) => Decision::Redirect {
                        node: n.name.clone(),
                        url: n.url.clone(),
                    },
                    None => Decision::Origin,
                }
            }
            _ => Decision::Origin,
        };
    }
    let Some(origin) = origin else {
        // The origin stopped refreshing its entry: it is gone, and the room with it.
        return Decision::Claim {
            revision: Some(entry.revision),
        };
    };
    match i.arrival {
        Arrival::Participant => Decision::Redirect {
            node: origin.name.clone(),
            url: origin.url.clone(),
        },
        Arrival::Viewer => {
            let Some(best) = least_loaded(i.nodes, &origin.name) else {
                return Decision::Edge {
                    origin: origin.name.clone(),
                };
            };
            let here = i.nodes.iter().find(|n| n.name == i.me);
            // Serve here unless another edge is clearly less loaded: a viewer that
            // lands on a node stays there (no hop) while loads are close.
            let stay = match here {
                Some(h) => h.name == best.name || h.viewers <= best.viewers + STAY_MARGIN,
                None => true,
            };
            if stay {
                Decision::Edge {
                    origin: origin.name.clone(),
                }
            } else {
                Decision::Redirect {
                    node: best.name.clone(),
                    url: best.url.clone(),
                }
            }
        }
    }
}

/// A node serves a viewer that reached it while it has at most this many more viewers
/// than the least loaded edge.
pub const STAY_MARGIN: usize = 10;

/// The node other than `origin` with the fewest viewers (then the lowest CPU share,
/// then the name, so that every node picks the same one).
fn least_loaded<'a>(nodes: &'a [NodeLoad], origin: &str) -> Option<&'a NodeLoad> {
    nodes.iter().filter(|n| n.name != origin).min_by(|a, b| {
        a.viewers
            .cmp(&b.viewers)
            .then(a.cpu.total_cmp(&b.cpu))
            .then(a.name.cmp(&b.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, viewers: usize) -> NodeLoad {
        NodeLoad {
            name: name.into(),
            url: format!("https://{name}:8443"),
            viewers,
            participants: 0,
            links: 0,
            cpu: 0.0,
            egress_bps: 0,
        }
    }

    fn inputs<'a>(
        me: &'a str,
        arrival: Arrival,
        entry: Option<&'a RoomEntry>,
        nodes: &'a [NodeLoad],
    ) -> Inputs<'a> {
        Inputs {
            me,
            arrival,
            entry,
            nodes,
            room_viewers_here: 0,
            edge_after: 50,
        }
    }

    fn entry(origin: &str) -> RoomEntry {
        RoomEntry {
            origin: origin.into(),
            revision: 7,
        }
    }

    #[test]
    fn a_new_room_is_claimed_create_only() {
        let nodes = [node("a", 0), node("b", 0)];
        for arrival in [Arrival::Participant, Arrival::Viewer] {
            let d = decide(&inputs("a", arrival, None, &nodes));
            assert_eq!(d, Decision::Claim { revision: None });
        }
    }

    #[test]
    fn participants_go_to_the_origin() {
        let nodes = [node("a", 0), node("b", 0)];
        let e = entry("a");
        let d = decide(&inputs("b", Arrival::Participant, Some(&e), &nodes));
        assert_eq!(
            d,
            Decision::Redirect {
                node: "a".into(),
                url: "https://a:8443".into()
            }
        );
        let d = decide(&inputs("a", Arrival::Participant, Some(&e), &nodes));
        assert_eq!(d, Decision::Origin);
    }

    #[test]
    fn a_dead_origin_is_replaced_by_compare_and_swap() {
        let nodes = [node("b", 0)];
        let e = entry("a");
        let d = decide(&inputs("b", Arrival::Participant, Some(&e), &nodes));
        assert_eq!(d, Decision::Claim { revision: Some(7) });
    }

    #[test]
    fn viewers_stay_on_the_edge_they_reached_while_loads_are_close() {
        let nodes = [node("a", 0), node("b", 12), node("c", 3)];
        let e = entry("a");
        let d = decide(&inputs("b", Arrival::Viewer, Some(&e), &nodes));
        assert_eq!(d, Decision::Edge { origin: "a".into() });
        let nodes = [node("a", 0), node("b", 40), node("c", 3)];
        let d = decide(&inputs("b", Arrival::Viewer, Some(&e), &nodes));
        assert_eq!(
            d,
            Decision::Redirect {
                node: "c".into(),
                url: "https://c:8443".into()
            }
        );
    }

    #[test]
    fn the_origin_sends_viewers_to_edges_past_its_share() {
        let nodes = [node("a", 60), node("b", 5), node("c", 3)];
        let e = entry("a");
        let mut i = inputs("a", Arrival::Viewer, Some(&e), &nodes);
        i.room_viewers_here = 49;
        assert_eq!(decide(&i), Decision::Origin);
        i.room_viewers_here = 50;
        assert_eq!(
            decide(&i),
            Decision::Redirect {
                node: "c".into(),
                url: "https://c:8443".into()
            }
        );
        // Alone in the cluster, it keeps serving.
        let alone = [node("a", 60)];
        let mut i = inputs("a", Arrival::Viewer, Some(&e), &alone);
        i.room_viewers_here = 500;
        assert_eq!(decide(&i), Decision::Origin);
    }

    #[test]
    fn a_viewer_on_a_node_without_heartbeat_yet_stays() {
        let nodes = [node("a", 0), node("c", 0)];
        let e = entry("a");
        let d = decide(&inputs("b", Arrival::Viewer, Some(&e), &nodes));
        assert_eq!(d, Decision::Edge { origin: "a".into() });
    }
}
