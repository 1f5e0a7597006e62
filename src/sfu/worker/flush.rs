//! What a worker's shard produced goes out: datagrams in `sendmmsg` batches per media
//! socket (or on an ICE-TCP connection, or a relay link's socket), signaling messages
//! to their sessions, route changes to the receive task, messages for other workers
//! in one batch each per turn.

use std::time::Instant;

use str0m::net::Protocol;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use super::Worker;
use crate::sfu::lanes::Route;
use crate::sfu::link::is_remote;
use crate::sfu::shard::{Output, Shard};
use crate::sfu::udp::Outgoing;
use crate::signaling::protocol::{ErrorCode, ServerMsg};

/// Datagrams for one socket that are sent as soon as they are there, in one
/// `sendmmsg`, without waiting for the rest of the turn's.
const SEND_AT: usize = 32;

impl Worker {
    /// Takes everything the `Shard` produced: route changes go to the receive task,
    /// datagrams are sent in batches, signaling messages delivered.
    pub(super) fn flush(&mut self, shard: &mut Shard) {
        while let Some(out) = shard.poll_output() {
            match out {
                Output::Route(addr, learnt) => {
                    let route = Route {
                        addr,
                        worker: self.index,
                        learnt,
                    };
                    let Some(routes) = &self.to_receive.routes else {
                        continue;
                    };
                    if routes.try_send(route).is_err() {
                        self.route_drops += 1;
                    }
                }
                Output::Transmit(t) if t.proto == Protocol::Tcp => {
                    let sent = self.tcp.get(&t.destination).is_some_and(|frames| {
                        frames
                            .try_send(bytes::Bytes::from(Vec::from(t.contents)))
                            .is_ok()
                    });
                    if !sent {
                        self.tcp_drops += 1;
                    }
                }
                Output::Transmit(t)
                    if !self.link_sockets.is_empty()
                        && self.link_sockets.contains_key(&t.source) =>
                {
                    // A relay link's datagram: on its own socket.
                    if let Some(l) = self.link_sockets.get(&t.source) {
                        if l.socket.try_send_to(&t.contents, t.destination).is_err() {
                            self.link_send_drops += 1;
                        }
                    }
                }
                Output::BindLink(link) => {
                    let local = self.bind_link(link);
                    shard.link_bound(Instant::now(), link, local);
                }
                Output::Transmit(t) => {
                    let Some(i) = self
                        .senders
                        .iter()
                        .position(|s| s.local_addr().is_ipv4() == t.destination.is_ipv4())
                    else {
                        // No media socket of that family (e.g. IPv6 turned off).
                        self.no_socket_drops += 1;
                        continue;
                    };
                    let src = self.sets_source[i].then_some(t.source.ip());
                    self.pending[i].push((t.destination, src, t.contents));
                    // Sent as they come: the shard makes a fan-out's copies a step at
                    // a time, so the first receivers' leave while the rest are made.
                    if self.pending[i].len() >= SEND_AT {
                        self.send_pending(i);
                    }
                }
                Output::Signal(id, msg) => {
                    let Some(tx) = self.sessions.get(&id) else {
                        continue;
                    };
                    match tx.try_send(msg) {
                        Ok(()) => {}
                        // Another participant's signal for one that is behind: that
                        // signal is dropped, not the participant, and its sender hears.
                        Err(TrySendError::Full(ServerMsg::Direct { from, .. })) => {
                            self.direct_drops += 1;
                            if let Some(sender) = self.sessions.get(&from) {
                                let message = format!(
                                    "participant {id} is not keeping up: your signal was dropped"
                                );
                                let _ = sender
                                    .try_send(ServerMsg::error(ErrorCode::RateLimited, message));
                            }
                        }
                        Err(TrySendError::Full(_)) => {
                            // Too slow: dropping the sender ends the session, which then
                            // sends Leave.
                            warn!(id, "signaling queue full; disconnecting");
                            self.session_drops += 1;
                            self.sessions.remove(&id);
                        }
                        Err(TrySendError::Closed(_)) => {
                            // The session ended (its Leave is on the way): not a drop.
                            debug!(id, "session gone");
                            self.sessions.remove(&id);
                        }
                    }
                }
                Output::Close(id) => {
                    self.link_sockets.retain(|_, l| {
                        if l.link == id {
                            l.reader.abort();
                        }
                        l.link != id
                    });
                    self.sessions.remove(&id);
                    self.registry.release(id);
                }
                Output::Link(to, msg) if is_remote(to) => {
                    // Another node's: the cluster task carries it over NATS.
                    let _ = self.to_cluster.send((to, msg));
                }
                Output::Link(to, msg) => {
                    if let Some(out) = self.link_out.get_mut(to) {
                        out.push(msg);
                    }
                }
                Output::HttpAnswer(id, answer) => {
                    let admitted = answer.is_ok();
                    if !admitted {
                        self.registry.release(id);
                    }
                    let delivered = self
                        .http_waiting
                        .remove(&id)
                        .is_some_and(|reply| reply.send(answer).is_ok());
                    if admitted && !delivered {
                        // The request is gone, and with it the player.
                        shard.leave(Instant::now(), id, "left");
                    }
                }
            }
        }
        for (to, out) in self.link_out.iter_mut().enumerate() {
            if !out.is_empty() {
                let msgs = std::mem::take(out);
                self.link_drops[to] += self.links.send(to, msgs);
            }
        }
        for i in 0..self.pending.len() {
            self.send_pending(i);
        }
    }

    /// Sends the datagrams waiting for socket `i`.
    fn send_pending(&mut self, i: usize) {
        let (Some(sender), Some(pending)) = (self.senders.get_mut(i), self.pending.get_mut(i))
        else {
            return;
        };
        if pending.is_empty() {
            return;
        }
        let out: Vec<Outgoing<'_>> = pending
            .iter()
            .map(|(destination, source, contents)| Outgoing {
                destination: *destination,
                source: *source,
                contents,
            })
            .collect();
        sender.send_all(&out);
        drop(out);
        // The buffers go back to str0m for the next packets this worker encrypts.
        for (_, _, contents) in pending.drain(..) {
            str0m::net::recycle(contents);
        }
    }
}
