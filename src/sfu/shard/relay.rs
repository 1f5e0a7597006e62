//! Relay links between nodes of a cluster (see `crate::cluster`).
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use super::Shard;

impl Shard {
    /// Relay links this shard holds.
    pub fn relay_links(&self) -> usize {
        0
    }
}
