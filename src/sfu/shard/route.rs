//! Which peer a datagram belongs to, and how a peer's addresses are learnt.
//!
//! - STUN carries the server's ufrag, which names the peer. A binding request is
//!   checked before any `Rtc` sees it: its MESSAGE-INTEGRITY must be signed with the
//!   peer's password, a transaction already seen from another address (a replay) is
//!   refused, and so is an address another live peer holds. Only when the peer's `Rtc`
//!   then takes the request is its source address learnt for the peer (and reported to
//!   the receive task as [`Output::Route`]).
//! - DTLS and SRTP are routed by source address, to the peer that proved it.
//! - A peer keeps at most [`MAX_ADDRS`] addresses; the least recently confirmed one
//!   makes room for a new one. New addresses are taken at the pace a device changing
//!   networks brings them (a burst, then one every few seconds), so even a client with
//!   valid credentials cannot make a peer's ICE agent track thousands of sources.
//!
//! So a forged or replayed request from another host cannot move a call's media: the
//! worst it earns is a count in `stun_refused`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use str0m::ice::StunMessage;
use str0m::net::{Protocol, Receive};
use tracing::debug;

use super::{Output, Shard};
use crate::sfu::demux::{self, Kind};
use crate::sfu::driver::{Drained, Received};
use crate::sfu::peer::{Consent, DownState, Local, MAX_ADDRS, RECENT_STUN};
use crate::signaling::protocol::PeerId;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::RtcError;

/// The shard's routing tables.
#[derive(Debug, Default)]
pub(super) struct Routes {
    /// Server ufrag → peer, to route STUN requests.
    by_ufrag: HashMap<String, PeerId>,
    /// Remote address → peer, learnt from authenticated STUN, to route DTLS and SRTP.
    by_addr: FxHashMap<SocketAddr, PeerId>,
}

impl Routes {
    pub(super) fn has_ufrag(&self, ufrag: &str) -> bool {
        self.by_ufrag.contains_key(ufrag)
    }

    pub(super) fn add_ufrag(&mut self, ufrag: String, id: PeerId) {
        self.by_ufrag.insert(ufrag, id);
    }

    pub(super) fn remove_ufrag(&mut self, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
    }
}

/// How long after the last binding request a peer whose media flows has it replayed
/// (browsers check every 2.5 to 5 s, so they never need it; the pair times out at 15 s).
const CONSENT_REFRESH: Duration = Duration::from_secs(5);

/// Why a binding request was turned away before reaching an `Rtc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Integrity,
    Replay,
    AddressTaken,
    /// New addresses come faster than a device moving between networks would bring
    /// them (each would otherwise become a candidate in the peer's ICE agent).
    TooManyAddresses,
}

impl Shard {
    /// A datagram arrived on the media port from `src`, addressed to `dst` (the
    /// candidate address str0m must see).
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, buf: &[u8]) {
        self.receive(now, Protocol::Udp, src, dst, buf);
    }

    /// A frame arrived on an ICE-TCP connection from `src` to the server's TCP
    /// candidate `dst` (RFC 4571: the length prefix already taken off).
    pub fn handle_tcp_frame(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr, buf: &[u8]) {
        self.receive(now, Protocol::Tcp, src, dst, buf);
    }

    fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        src: SocketAddr,
        dst: SocketAddr,
        buf: &[u8],
    ) {
        let kind = demux::classify(buf);
        // A relay link's socket carries only that link (and the origin's STUN
        // responses name no ufrag of ours).
        let link = match self.relay_local.is_empty() {
            true => None,
            false => self.relay_local.get(&dst),
        };
        let id = match kind {
            _ if link.is_some() => link,
            Kind::Stun => demux::stun_local_ufrag(buf).and_then(|u| self.routes.by_ufrag.get(u)),
            Kind::Dtls | Kind::Rtp => self.routes.by_addr.get(&src),
            Kind::Other => None,
        };
        let Some(&id) = id else {
            self.counters.unroutable += 1;
            debug!(%src, len = buf.len(), "dropped unroutable datagram");
            return;
        };
        let Ok(recv) = Receive::new(proto, src, dst, buf) else {
            self.counters.rejected += 1;
            return;
        };
        let request = match kind {
            Kind::Stun => StunMessage::parse(buf)
                .ok()
                .filter(StunMessage::is_binding_request),
            _ => None,
        };
        if let Some(msg) = &request {
            if let Err(why) = self.check_request(now, id, src, msg) {
                self.counters.stun_refused += 1;
                debug!(id, %src, ?why, "STUN request refused");
                return;
            }
        }
        let learn = request.is_some();
        let Some(driver) = self
            .peers
            .get_mut(&id)
            .and_then(|p| p.here_mut())
            .and_then(|l| l.rtc.as_mut())
        else {
            self.counters.unroutable += 1;
            return;
        };
        let received = driver.receive(now, recv, &mut self.drained);
        // One look at the peer for what every packet updates.
        let (mut moved, mut failed) = (false, None);
        if let Some(l) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) {
            // A NACK or feedback may ask for a turn: it gets it at its time.
            l.gate_until = None;
            if matches!(received, Ok(Received::Taken)) {
                if learn {
                    l.consent = Some(Consent {
                        request: buf.to_vec(),
                        proto,
                        from: src,
                        to: dst,
                        at: now,
                    });
                } else if kind == Kind::Rtp {
                    moved = l.media_from.replace(src).is_some_and(|b| b != src);
                    failed = refresh_consent(l, now, src, &mut self.drained).err();
                }
            }
        }
        match received {
            Ok(Received::Taken) if learn => self.learn_addr(now, id, src, proto),
            Ok(Received::Taken) => {}
            Ok(Received::Refused) | Ok(Received::NotOurs) => self.counters.rejected += 1,
            Err(e) => failed = Some(e),
        }
        if let Some(e) = failed {
            self.fail(id, &e);
        } else if moved {
            debug!(id, %src, "media moved to a new address");
            self.media_moved(now, id);
        }
        self.schedule(id);
        self.process(now);
    }

    /// Peer `id`'s media now comes from a new address (its network changed and ICE
    /// restarted): what was sent to and from it during the change is lost, so every
    /// video it sends and receives gets a keyframe at once, rather than after the
    /// receivers' retransmission requests fail (about a second later). Its media
    /// arriving from there means the browser uses the new pair, so the keyframes
    /// reach it.
    fn media_moved(&mut self, now: Instant, id: PeerId) {
        let Some(peer) = self.peers.get(&id) else {
            return;
        };
        let ups: Vec<Mid> = peer
            .up
            .iter()
            .filter(|(_, u)| u.kind == MediaKind::Video)
            .map(|(m, _)| *m)
            .collect();
        // Each received video at the layer forwarded to it, as its own request would.
        let downs: Vec<(PeerId, Mid, Option<Rid>)> = peer
            .here()
            .map(|l| {
                l.down
                    .iter()
                    .filter(|(_, d)| {
                        d.kind == MediaKind::Video && matches!(d.state, DownState::Open(_))
                    })
                    .map(|((src, mid), d)| (*src, *mid, d.layer))
                    .collect()
            })
            .unwrap_or_default();
        for mid in ups {
            self.request_keyframe(now, id, mid, None, KeyframeRequestKind::Pli);
        }
        for (src, mid, layer) in downs {
            self.request_keyframe(now, src, mid, layer, KeyframeRequestKind::Pli);
        }
    }

    /// The checks of a binding request for peer `id` from `src` that str0m does not
    /// make (or makes only after it has taken the request).
    fn check_request(
        &mut self,
        now: Instant,
        id: PeerId,
        src: SocketAddr,
        msg: &StunMessage<'_>,
    ) -> Result<(), Refusal> {
        let Some(local) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) else {
            return Ok(());
        };
        if !msg.verify(local.pass.as_bytes(), sha1_hmac) {
            return Err(Refusal::Integrity);
        }
        let tid = msg.trans_id();
        if local
            .recent_stun
            .iter()
            .any(|(t, from)| *t == tid && *from != src)
        {
            return Err(Refusal::Replay);
        }
        if self
            .routes
            .by_addr
            .get(&src)
            .is_some_and(|owner| *owner != id)
        {
            return Err(Refusal::AddressTaken);
        }
        if !local.addrs.iter().any(|(a, _)| *a == src) && !local.new_addrs.take(now) {
            return Err(Refusal::TooManyAddresses);
        }
        if local.recent_stun.len() >= RECENT_STUN {
            local.recent_stun.remove(0);
        }
        local.recent_stun.push((tid, src));
        Ok(())
    }

    /// Peer `id`'s `Rtc` took an authenticated binding request from `src`. Only UDP
    /// addresses are routes for the receive task: a TCP connection's frames reach this
    /// worker through the connection itself.
    fn learn_addr(&mut self, now: Instant, id: PeerId, src: SocketAddr, proto: Protocol) {
        let udp = proto == Protocol::Udp;
        let Some(local) = self.peers.get_mut(&id).and_then(|p| p.here_mut()) else {
            return;
        };
        if let Some(a) = local.addrs.iter_mut().find(|(a, _)| *a == src) {
            a.1 = now;
            // Said again at every check (every few seconds), so a change the receive
            // task missed (its queue was full) heals by itself.
            if udp {
                self.routes_out.push_back(Output::Route(src, true));
            }
            return;
        }
        let evicted = if local.addrs.len() >= MAX_ADDRS {
            let oldest = (0..local.addrs.len())
                .min_by_key(|&i| local.addrs[i].1)
                .expect("a full list");
            Some(local.addrs.swap_remove(oldest).0)
        } else {
            None
        };
        local.addrs.push((src, now));
        if let Some(old) = evicted {
            self.forget_addr(id, old);
        }
        self.routes.by_addr.insert(src, id);
        if udp {
            self.routes_out.push_back(Output::Route(src, true));
        }
    }

    /// Drops `addr` from the routes if it is peer `id`'s.
    fn forget_addr(&mut self, id: PeerId, addr: SocketAddr) {
        if self.routes.by_addr.get(&addr) == Some(&id) {
            self.routes.by_addr.remove(&addr);
            self.routes_out.push_back(Output::Route(addr, false));
        }
    }

    /// Peer `id` is gone: its ufrag and addresses route nowhere.
    pub(super) fn unroute(&mut self, id: PeerId, local: &Local) {
        self.routes.remove_ufrag(&local.ufrag);
        for (a, _) in &local.addrs {
            self.forget_addr(id, *a);
        }
    }
}

/// HMAC-SHA1 of `parts` under `key` (STUN's MESSAGE-INTEGRITY, RFC 8489 §14.5).
fn sha1_hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let tag = ctx.sign();
    let mut out = [0u8; 20];
    out.copy_from_slice(tag.as_ref());
    out
}

/// SRTP or SRTCP from peer `l` at `src` reached its `Rtc`. A client that sends no ICE
/// consent checks once its pair is nominated (libnice, unless told to) would be
/// dropped after 15 s although its media flows: while media keeps coming from the
/// address its last authenticated binding request came from, that request is fed to
/// its `Rtc` again every few seconds, as if the client had sent it. When media and
/// checks both stop, the pair times out as usual.
fn refresh_consent(
    l: &mut Local,
    now: Instant,
    src: SocketAddr,
    drained: &mut Drained,
) -> Result<(), RtcError> {
    let (Some(c), Some(driver)) = (l.consent.as_mut(), l.rtc.as_mut()) else {
        return Ok(());
    };
    if c.from != src || now.saturating_duration_since(c.at) < CONSENT_REFRESH {
        return Ok(());
    }
    c.at = now;
    let Ok(recv) = Receive::new(c.proto, c.from, c.to, &c.request) else {
        return Ok(());
    };
    debug!(%src, "ICE consent kept on the peer's behalf: its media flows, its checks do not");
    driver.receive(now, recv, drained).map(|_| ())
}
