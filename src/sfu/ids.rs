//! Participant ids: one counter for the process, and in a cluster a range of its own
//! per node, so that a peer keeps its id on every node that serves it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::signaling::protocol::PeerId;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new participant id, unique for the process (and, in a cluster, across its nodes:
/// see [`spread_peer_ids`]).
pub fn next_peer_id() -> PeerId {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// In a cluster, one node's viewers and publishers appear on other nodes under their
/// id: each node counts from its own random base, `prefix << 32` (below 2^53, so the
/// ids stay exact as numbers in the pages' JSON).
pub fn spread_peer_ids(prefix: u32) {
    let _ = NEXT_ID.fetch_max(id_base(prefix), Ordering::Relaxed);
}

/// The first id of a node with this random prefix: `(1 ..= 2^20 - 1) << 32`, a range
/// of its own for (almost) every prefix.
fn id_base(prefix: u32) -> u64 {
    (u64::from(prefix % ((1 << 20) - 1)) + 1) << 32
}

#[cfg(test)]
mod tests {
    use super::id_base as base;

    /// Two nodes' random prefixes give them different id ranges, all below 2^53.
    #[test]
    fn node_id_bases_differ_and_stay_exact_in_json() {
        assert_ne!(base(u32::MAX), base(u32::MAX - 1));
        assert_ne!(base(3_000_000), base(4_000_000));
        for p in [0, 1, u32::MAX, 1 << 20, (1 << 20) - 1] {
            assert!(base(p) >= 1 << 32 && base(p) + (1 << 32) <= 1 << 53, "{p}");
        }
    }
}
