//! Relay links between nodes of a cluster: one WebRTC connection per (room, edge
//! node) that carries every track of the room's publishers, every simulcast layer,
//! from the room's origin to the edge (see `crate::cluster` and `docs/cluster.md`).
//!
//! An edge serves the room's viewers as a mirror worker does (`shard::mirror`), with
//! the room's home being another node ([`REMOTE_HOME`]): its stand-in publishers get
//! their packets from the link instead of from another worker, and their keyframe
//! requests go back as RTCP on the link. The origin keeps a stub for each viewer an
//! edge serves ([`Served::Elsewhere`] with the edge's index), as a home does.
//!
//! The link is set up without SDP, through str0m's direct API: the edge (the ICE
//! controlling agent, DTLS client, on a UDP socket of its own) offers its ICE
//! credentials, DTLS fingerprint and socket address over NATS; the origin (ICE-lite
//! on its media port, DTLS server) answers with its own. Each publisher track is one
//! media on the link, its mid derived from the publisher's id and mid
//! ([`relay_mid`]) so that both sides name it alike without telling each other; each
//! simulcast layer is one stream of it (its rid), declared by the origin on its first
//! packet with an SSRC and an RTX SSRC of its own. The edge finds the streams by the
//! mid and rid header extensions str0m sends until the edge's receiver reports come
//! back. A new track therefore needs no renegotiation: a `TrackAdded` over NATS, and
//! its packets.
//!
//! Sequence numbers are renumbered per stream from a fixed start, keeping the
//! publisher's gaps (a loss upstream stays a loss) so that NACKs on the link ask for
//! the packets the link lost, which the origin resends from its RTX cache.
//!
//! The edge's side of a link is in `relay_edge.rs`, the origin's in `relay_origin.rs`;
//! here, what both share.
#![warn(clippy::disallowed_methods)] // Sans-IO: see clippy.toml

use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;
use str0m::crypto::Fingerprint;
use str0m::format::PayloadParams;
use str0m::ice::IceCreds;
use str0m::media::{Mid, Pt, Rid};
use str0m::{Candidate, Rtc};
use tracing::{info, warn};

use super::{Output, Shard};
use crate::sfu::driver::{Drained, Driver};
use crate::sfu::link::{LinkMsg, LinkParams, REMOTE_HOME};
use crate::sfu::peer::{Client, Local, Peer, Served};
use crate::signaling::protocol::{PeerId, PeerInfo, Role};

/// The first sequence number of a relayed stream; packets of the publisher's that
/// arrive out of order from before the first one relayed keep their place below it.
pub(super) const START_SEQ: u64 = 1 << 14;

/// One relay link this shard holds.
pub(super) struct Link {
    pub(super) room: String,
    pub(super) side: Side,
}

/// Which end of the link this shard is.
pub(super) enum Side {
    /// The room's origin, sending to edge `edge` (its worker index).
    Out {
        edge: usize,
        /// The streams declared so far, one per (publisher, mid, layer).
        streams: Vec<OutStream>,
        /// Medias declared so far (relay mids).
        medias: Vec<Mid>,
    },
    /// An edge, receiving from the origin on its own socket `local`.
    In {
        local: SocketAddr,
        /// Medias declared so far: relay mid → (publisher, its mid).
        medias: Vec<(Mid, PeerId, Mid)>,
        /// Payload parameters of the PTs seen, looked up once.
        params: Vec<(Pt, Option<PayloadParams>)>,
    },
}

/// One relayed stream at the origin.
pub(super) struct OutStream {
    pub(super) publisher: PeerId,
    pub(super) mid: Mid,
    pub(super) rid: Option<Rid>,
    pub(super) relay_mid: Mid,
    pub(super) ssrc: u32,
    /// The publisher's sequence number of the first packet relayed.
    pub(super) first_seq: u64,
    /// Publisher PT → the link's PT for the same codec.
    pub(super) pts: Vec<(Pt, Option<Pt>)>,
}

/// The mid of publisher `publisher`'s track `mid` on every relay link (at most 16
/// characters: the id in base 36, `_`, the publisher's mid).
pub(crate) fn relay_mid(publisher: PeerId, mid: Mid) -> Mid {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = String::new();
    let mut n = publisher;
    loop {
        id.insert(0, DIGITS[(n % 36) as usize] as char);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    Mid::from(format!("{id}_{}", mid.to_string().trim()).as_str())
}

impl Shard {
    /// Relay links this shard holds.
    pub fn relay_links(&self) -> usize {
        self.relays.len()
    }

    /// Whether `id` is a relay link.
    pub(super) fn is_relay(&self, id: PeerId) -> bool {
        !self.relays.is_empty() && self.relays.contains_key(&id)
    }

    /// A peer id for a new link: drawn from the shard's generator, above the ids
    /// signaling hands out (they never reach a page).
    pub(super) fn link_id(&mut self) -> PeerId {
        loop {
            let id = self.rng.random::<u64>() | (1 << 63);
            if !self.peers.contains_key(&id) {
                return id;
            }
        }
    }

    /// Adds link `id` of `room` as a peer of this shard: its drained `Rtc` in a relay
    /// client's state, and the link's side.
    pub(super) fn add_link(
        &mut self,
        id: PeerId,
        room: &str,
        creds: &IceCreds,
        driver: Driver,
        side: Side,
    ) {
        let rate = self.cfg.direct_rate;
        let mut local = Local::new(Client::Relay, creds.ufrag.clone(), creds.pass.clone(), rate);
        local.rtc = Some(driver);
        let info = PeerInfo::joining(id, "relay link".into());
        let peer = Peer::new(
            id,
            info,
            Role::Viewer,
            room.to_string(),
            Served::Here(Box::new(local)),
        );
        self.peers.insert(id, peer);
        let room = room.to_string();
        self.relays.insert(id, Link { room, side });
    }

    /// Origin: the links of `room` to edge `edge`.
    pub(super) fn links_from(&self, room: &str, edge: usize) -> Vec<PeerId> {
        self.relay_out
            .get(room)
            .map(|v| {
                v.iter()
                    .filter(|(e, _)| *e == edge)
                    .map(|(_, id)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes link `id` (it failed, timed out, or is no longer needed). `tell`: the
    /// other node hears it (over NATS) when it does not know yet.
    pub(super) fn close_relay(&mut self, now: Instant, id: PeerId, why: &str, tell: bool) {
        let Some(link) = self.relays.remove(&id) else {
            return;
        };
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        info!(room = link.room, why, "relay link closed");
        if let Served::Here(local) = &mut peer.served {
            self.unroute(id, local);
            if let Some(driver) = local.rtc.as_mut() {
                let mut scratch = Drained::default();
                let _ = driver.mutate(&mut scratch, |rtc| rtc.close());
                self.drained.transmits.extend(scratch.transmits);
            }
        }
        self.out.push_back(Output::Close(id));
        match link.side {
            Side::In { local, .. } => {
                self.relay_local.remove(&local);
                if self.relay_in.get(&link.room) == Some(&id) {
                    self.relay_in.remove(&link.room);
                }
                if tell {
                    let msg = LinkMsg::LinkClosed {
                        room: link.room.clone(),
                        from: self.cfg.worker,
                    };
                    self.out.push_back(Output::Link(REMOTE_HOME, msg));
                } else {
                    self.relay_lost(now, &link.room);
                }
            }
            Side::Out { edge, .. } => {
                if let Some(v) = self.relay_out.get_mut(&link.room) {
                    v.retain(|(_, l)| *l != id);
                    if v.is_empty() {
                        self.relay_out.remove(&link.room);
                    }
                }
                // The edge's viewers of the room go with the link: their stubs here
                // (and what the registry counts for them) are removed.
                let far: Vec<PeerId> = self
                    .rooms
                    .viewers(&link.room)
                    .iter()
                    .copied()
                    .filter(|v| {
                        self.peers.get(v).is_some_and(
                            |p| matches!(p.served, Served::Elsewhere { worker } if worker == edge),
                        )
                    })
                    .collect();
                for v in far {
                    self.leave(now, v, "disconnected");
                    self.out.push_back(Output::Close(v));
                }
            }
        }
    }
}

/// Points `rtc` at the far end of a relay link: its ICE credentials, DTLS certificate
/// and host candidates, as its [`LinkParams`] give them (`fingerprint` parsed from
/// them by the caller, which says what it does when it does not parse).
pub(super) fn set_link_peer(rtc: &mut Rtc, params: LinkParams, fingerprint: Fingerprint) {
    let mut api = rtc.direct_api();
    api.set_remote_ice_credentials(IceCreds {
        ufrag: params.ufrag,
        pass: params.pass,
    });
    api.set_remote_fingerprint(fingerprint);
    for addr in &params.candidates {
        if let Ok(c) = Candidate::host(*addr, "udp") {
            rtc.add_remote_candidate(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_mids_fit_and_differ() {
        let a = relay_mid((1 << 52) + 12345, Mid::from("10"));
        let b = relay_mid((1 << 52) + 12345, Mid::from("1"));
        let c = relay_mid(7, Mid::from("10"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.to_string().trim().len() <= 16, "{a}");
        assert_eq!(c.to_string().trim(), "7_10");
    }
}
