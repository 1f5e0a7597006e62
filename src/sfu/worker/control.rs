//! A worker's control lane: commands from signaling (join, signal, resume, leave,
//! WHIP/WHEP sessions) and the requests that read or change the shard (status, rooms,
//! recordings, ICE-TCP connections), each answered on its reply channel.

use std::time::Instant;

use super::Worker;
use crate::sfu::lanes::{Command, Control, Report, WorkerStatus};
use crate::sfu::shard::{HttpAnswer, Shard};

impl Worker {
    pub(super) fn control(&mut self, shard: &mut Shard, msg: Control) {
        match msg {
            Control::Command { cmd, home } => self.command(shard, cmd, home),
            Control::EndResource { resource, reply } => {
                let _ = reply.send(shard.end_resource(Instant::now(), &resource));
            }
            Control::HasResource { resource, reply } => {
                let _ = reply.send(shard.has_resource(&resource));
            }
            Control::TcpOpened { peer, frames } => {
                self.tcp.insert(peer, frames);
            }
            Control::TcpClosed { peer } => {
                self.tcp.remove(&peer);
            }
            Control::Rooms { reply } => {
                let _ = reply.send(shard.rooms_snapshot());
            }
            Control::Recording {
                room,
                on,
                message,
                reply,
            } => {
                let r = match on {
                    true => shard.start_recording(Instant::now(), &room),
                    false => Ok(shard.stop_recording(&room, message)),
                };
                let _ = reply.send(r);
            }
            Control::StopRecordings { reply } => {
                let _ = reply.send(shard.stop_all_recordings());
            }
            Control::Status { reply } => {
                let counters = shard.counters();
                let _ = reply.send(Report {
                    status: WorkerStatus {
                        rooms: shard.room_count(),
                        participants: shard.peer_count(),
                        forwarded_packets: counters.forwarded,
                        rtc_timeouts: counters.rtc_timeouts,
                        busy_seconds: self.busy.as_secs_f64(),
                        queue_drops: 0,
                    },
                    counters,
                    send_drops: self.senders.iter().map(|s| s.dropped).sum::<u64>()
                        + self.tcp_drops
                        + self.link_send_drops,
                    no_socket_drops: self.no_socket_drops,
                    session_drops: self.session_drops,
                    direct_drops: self.direct_drops,
                    route_drops: self.route_drops,
                    link_drops: self.link_drops.clone(),
                    relay_links: shard.relay_links(),
                });
            }
        }
    }

    /// `home`: the worker of the room, for a join.
    fn command(&mut self, shard: &mut Shard, cmd: Command, home: usize) {
        let now = Instant::now();
        match cmd {
            Command::Join {
                id,
                room,
                name,
                role,
                mode,
                token,
                host_token,
                tx,
                from: _,
            } => {
                self.sessions.insert(id, tx);
                let tokens = (token.as_deref(), host_token.as_deref());
                if home == self.index {
                    shard.join(now, id, &room, &name, role, mode, tokens);
                } else {
                    shard.join_mirrored(home, id, &room, &name, mode, tokens);
                }
            }
            Command::Signal { id, msg } => shard.handle_signal(now, id, msg),
            Command::Resume { id, tx } => {
                // What was said to the old connection goes there; the new one starts
                // with the fresh `joined`.
                self.flush(shard);
                self.sessions.insert(id, tx);
                if !shard.resume(now, id) {
                    // Not here any more: dropping the sender ends the session.
                    self.sessions.remove(&id);
                }
            }
            Command::Leave { id, reason } => {
                shard.leave(now, id, reason);
                self.sessions.remove(&id);
                self.registry.release(id);
            }
            Command::HttpSession {
                whep,
                id,
                room,
                token,
                offer,
                reply,
                from: _,
                edge: _,
            } => {
                if whep && home != self.index {
                    // Answered once the room's home has admitted the player.
                    match shard.whep_mirrored(home, id, &room, token.as_deref(), &offer) {
                        Ok(()) => {
                            self.http_waiting.insert(id, reply);
                        }
                        Err(e) => {
                            self.registry.release(id);
                            let _ = reply.send(Err(e));
                        }
                    }
                    return;
                }
                let r: HttpAnswer = if whep {
                    shard.whep(now, id, &room, token.as_deref(), &offer)
                } else {
                    shard.whip(now, id, &room, token.as_deref(), &offer)
                };
                if r.is_err() {
                    self.registry.release(id);
                }
                let _ = reply.send(r);
            }
        }
    }
}
