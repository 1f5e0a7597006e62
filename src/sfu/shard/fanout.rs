//! Forwarding: a publisher's RTP packet goes to each of its receivers on this shard
//! (header rewritten per receiver: payload type, sequence number, timestamp, VP8
//! picture ids), a step of receivers at a time, and once to every other worker that
//! serves viewers of the room. A receiver's layer switches here, on a keyframe of the
//! layer chosen for it (see `layers`).

use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::RtcError;

use super::{Output, Shard};
use crate::sfu::codec;
use crate::sfu::link::{LinkMsg, TrackPacket};
use crate::sfu::peer::{nackable, DownState, Local, Peer, Served, TrackKey, UpTrack};
use crate::signaling::protocol::PeerId;

/// What became of one packet written for one receiver.
enum Written {
    /// Not for this receiver (not its layer, waiting for a keyframe, not connected, a
    /// codec it cannot decode).
    Skipped,
    /// Written (and the receiver's `Rtc` drained); `offered`: sent at once or offered
    /// to str0m's pacer, so it has left unless the pacer holds it (else it waits for
    /// a timeout).
    Sent { offered: bool },
    /// The receiver's `Rtc` failed.
    Failed(RtcError),
}

impl Shard {
    /// An RTP packet arrived from publisher `from`: it goes to every receiver here and
    /// once to each other worker that serves viewers of the room.
    pub(super) fn forward(&mut self, now: Instant, from: PeerId, pkt: RtpPacket) {
        let Some((mid, rid)) = self.rx_stream(from, *pkt.header.ssrc) else {
            return;
        };
        let Some(Peer {
            up,
            served,
            room,
            holds,
            ..
        }) = self.peers.get_mut(&from)
        else {
            return;
        };
        let Served::Here(local) = served else {
            return;
        };
        local.stats.on_rtp(
            (mid, rid),
            *pkt.seq_no,
            pkt.header.timestamp,
            pkt.time.frequency().get(),
            pkt.timestamp,
        );
        let (Some(up), Some(driver)) = (up.get_mut(&mid), local.rtc.as_ref()) else {
            return;
        };
        // Held by the room's host: nobody gets it, here or on other workers, and a
        // held microphone never counts as speaking.
        if holds.blocks(up.source) {
            return;
        }
        // Who is speaking: one comparison here, the rest on the speaker tick.
        let level = pkt.header.ext_vals.audio_level;
        if let Some(l) = level {
            up.level.on_level(l);
        }
        let Some(params) = up.params(driver.rtc(), pkt.header.payload_type) else {
            return;
        };
        let packet = TrackPacket::from_rtp(mid, rid, params, pkt);
        let receivers = up.subscribers.len();
        if level.is_some() {
            self.timers.speaker_heard(now);
        }
        // (no hash of the room name per packet when no room here is spread)
        if !self.mirrors.is_empty() {
            if let Some(links) = self.mirrors.get(room.as_str()) {
                for &(worker, _) in links {
                    if crate::sfu::link::is_remote(worker) {
                        // Another node's edge: on the relay link, below.
                        continue;
                    }
                    let msg = LinkMsg::Rtp {
                        publisher: from,
                        packet: packet.clone(),
                    };
                    self.out.push_back(Output::Link(worker, msg));
                }
            }
        }
        if !self.relay_out.is_empty() {
            self.relay_out_rtp(now, from, &packet);
        }
        // (no lookup per packet when nothing here is recorded)
        if !self.recorders.is_empty() {
            self.record_packet(now, from, &packet);
        }
        self.fan_out_or_hold(now, from, packet, receivers);
    }

    /// The m-line and simulcast layer of publisher `from`'s incoming stream `ssrc`,
    /// looked up in its `Rtc` once per stream.
    pub(super) fn rx_stream(&mut self, from: PeerId, ssrc: u32) -> Option<(Mid, Option<Rid>)> {
        let local = self.peers.get_mut(&from)?.here_mut()?;
        if let Some(&(_, mid, rid)) = local.rx_streams.iter().find(|(s, _, _)| *s == ssrc) {
            return Some((mid, rid));
        }
        let driver = local.rtc.as_mut()?;
        // A lookup through str0m's direct API counts as a change: drained like one.
        let found = driver
            .mutate(&mut self.drained, |rtc| {
                rtc.direct_api()
                    .stream_rx(&ssrc.into())
                    .map(|s| (s.mid(), s.rid()))
            })
            .ok()
            .flatten()?;
        local.rx_streams.push((ssrc, found.0, found.1));
        self.schedule(from);
        Some(found)
    }

    /// Writes one packet of publisher `from` to each of its receivers on this shard,
    /// [`FAN_OUT_STEP`] receivers at a time: the first step now, the rest as
    /// [`Shard::poll_output`] hands out what the steps before made.
    pub(super) fn fan_out(&mut self, now: Instant, from: PeerId, pkt: TrackPacket) {
        self.fan_out_group(now, from, pkt, Vec::new());
    }

    /// Writes packets of one track of publisher `from` (`first`, then `rest`, in the
    /// order they came) to each of its receivers on this shard: all of them to one
    /// receiver, then all to the next, so that a receiver's state, cold by the time
    /// its next packet comes, is brought in once for the lot (see `hold`).
    /// [`FAN_OUT_STEP`] receivers at a time: the first step now, the rest as
    /// [`Shard::poll_output`] hands out what the steps before made.
    pub(super) fn fan_out_group(
        &mut self,
        now: Instant,
        from: PeerId,
        first: TrackPacket,
        rest: Vec<TrackPacket>,
    ) {
        // One fan-out at a time: one whose datagrams nobody took yet ends first.
        self.finish_fan_out();
        let Some(up) = self
            .peers
            .get_mut(&from)
            .and_then(|p| p.up.get_mut(&first.mid))
        else {
            return;
        };
        let simulcast = up.simulcast && first.rid.is_some();
        let first = prepare(now, up, simulcast, first);
        let rest: Vec<Prepared> = rest
            .into_iter()
            .map(|pkt| prepare(now, up, simulcast, pkt))
            .collect();
        if up.subscribers.is_empty() {
            return;
        }
        // More than a step: a copy of the list, as receivers may come and go between
        // steps (which changes the next packet's list, not this one's). One step: the
        // list itself, put back at the end (nothing runs in between).
        // About FAN_OUT_STEP copies a step, however many packets each receiver gets.
        let step = (FAN_OUT_STEP / (1 + rest.len())).max(1);
        let taken = up.subscribers.len() <= step;
        let subscribers = match taken {
            true => std::mem::take(&mut up.subscribers),
            false => up.subscribers.clone(),
        };
        let mut f = FanOut {
            now,
            from,
            subscribers,
            taken,
            next: 0,
            step,
            first,
            rest,
            simulcast,
            wants_keyframe: Vec::new(),
            notes: Vec::new(),
        };
        if self.write_step(&mut f) {
            self.fanout = Some(Box::new(f));
        } else {
            self.end_fan_out(f);
        }
    }

    /// Writes the next [`FAN_OUT_STEP`] receivers of the fan-out under way, and ends
    /// it after the last. Returns whether receivers are left.
    pub(super) fn step_fan_out(&mut self) -> bool {
        let Some(mut f) = self.fanout.take() else {
            return false;
        };
        if self.write_step(&mut f) {
            self.fanout = Some(f);
            return true;
        }
        self.end_fan_out(*f);
        false
    }

    /// Writes the next receivers of `f`, each all of its packets, [`FAN_OUT_STEP`]
    /// copies or so; returns whether receivers are left.
    fn write_step(&mut self, f: &mut FanOut) -> bool {
        let FanOut {
            now,
            from,
            subscribers,
            next,
            step,
            first,
            rest,
            simulcast,
            wants_keyframe,
            notes,
            ..
        } = f;
        let (now, key) = (*now, (*from, first.pkt.mid));
        let end = (*next + *step).min(subscribers.len());
        for (i, &sub) in subscribers.iter().enumerate().take(end).skip(*next) {
            // The next receiver's state comes into cache while this one is written.
            if let Some(next) = subscribers.get(i + 1) {
                if let Some(local) = self.peers.get(next).and_then(Peer::here) {
                    warm_down(local, key);
                }
            }
            for p in std::iter::once(&*first).chain(rest.iter()) {
                let Some(local) = self.peers.get_mut(&sub).and_then(Peer::here_mut) else {
                    break;
                };
                let packet = Packet {
                    pkt: &p.pkt,
                    key,
                    simulcast: *simulcast,
                    keyframe_start: p.keyframe_start,
                    vp8: p.vp8.as_ref(),
                };
                let written = write_down(
                    now,
                    local,
                    &packet,
                    &mut self.drained,
                    wants_keyframe,
                    |note| notes.push((sub, note)),
                );
                match written {
                    Written::Skipped => {}
                    Written::Sent { offered } => {
                        self.counters.forwarded += 1;
                        self.counters.forwarded_bytes += p.pkt.payload.len() as u64;
                        self.after_write(now, sub, offered);
                    }
                    Written::Failed(e) => {
                        self.fail(sub, &e);
                        break;
                    }
                }
            }
        }
        *next = end;
        end < subscribers.len()
    }

    /// After the last receiver: the list goes back (if it was taken), then the
    /// keyframe requests and the notices the copies called for.
    fn end_fan_out(&mut self, f: FanOut) {
        let FanOut {
            now,
            from,
            first,
            subscribers,
            taken,
            wants_keyframe,
            notes,
            ..
        } = f;
        let (mid, codec) = (first.pkt.mid, first.pkt.params.spec().codec);
        if taken {
            if let Some(up) = self.peers.get_mut(&from).and_then(|p| p.up.get_mut(&mid)) {
                // Subscribers added while forwarding (none today) would be lost otherwise.
                let added = std::mem::replace(&mut up.subscribers, subscribers);
                up.subscribers.extend(added);
            }
        }
        for layer in wants_keyframe {
            self.request_keyframe(now, from, mid, layer, KeyframeRequestKind::Pli);
        }
        for (sub, note) in notes {
            match note {
                Note::Switched(layer) => self.announce_layer(now, sub, from, mid, layer),
                Note::Undecodable => self.codec_gap(from, mid, sub, codec),
                Note::Decodable => self.codec_mended(from, sub, codec),
            }
        }
    }

    /// Writes every receiver left of the fan-out under way.
    pub(super) fn finish_fan_out(&mut self) {
        while self.step_fan_out() {}
    }

    /// Whether a fan-out is under way; its time moves on to `now` if later, as the
    /// events behind it wait for it to end and are then handled at that time.
    pub(super) fn fan_out_pending(&mut self, now: Instant) -> bool {
        let Some(f) = self.fanout.as_mut() else {
            return false;
        };
        f.now = f.now.max(now);
        true
    }
}

/// Copies written per step of a fan-out (receivers, when each gets one packet; fewer
/// receivers when each gets several). The worker sends what a step made before
/// the next one is written, so the first receivers' copies leave while the others'
/// are made (at 100 receivers the copies take the better part of a millisecond, and
/// nothing was sent before the last was made). The last receiver's copy leaves no
/// sooner: that is the cost of the whole fan-out.
pub(super) const FAN_OUT_STEP: usize = 32;

/// A fan-out under way: packets of one track and the receivers not yet written.
pub(super) struct FanOut {
    now: Instant,
    from: PeerId,
    /// The first packet, and those after it (most fan-outs have none).
    first: Prepared,
    rest: Vec<Prepared>,
    simulcast: bool,
    subscribers: Vec<PeerId>,
    /// The list was taken from the publisher's track (a single step), to put back.
    taken: bool,
    /// The first receiver not yet written.
    next: usize,
    /// Receivers written per step.
    step: usize,
    wants_keyframe: Vec<Option<Rid>>,
    notes: Vec<(PeerId, Note)>,
}

/// A packet of a fan-out with what was worked out once for all its receivers.
struct Prepared {
    pkt: TrackPacket,
    vp8: Option<Vp8Descriptor>,
    keyframe_start: bool,
}

/// Works out once what every receiver of `pkt` needs (whether it starts a keyframe,
/// its VP8 descriptor), and counts it in the track's layer rates.
fn prepare(now: Instant, up: &mut UpTrack, simulcast: bool, pkt: TrackPacket) -> Prepared {
    let codec = pkt.params.spec().codec;
    if up.codec != Some(codec) {
        up.codec = Some(codec);
    }
    let keyframe_start = up.kind == MediaKind::Video && codec::starts_keyframe(codec, &pkt.payload);
    // Parsed once for all receivers; each renumbers its own copy.
    let vp8 = match (up.kind, codec) {
        (MediaKind::Video, Codec::Vp8) => Vp8Descriptor::parse(&pkt.payload).ok(),
        _ => None,
    };
    if let (true, Some(r)) = (simulcast, pkt.rid) {
        up.rates.on_packet(now, r, pkt.payload.len());
        if keyframe_start {
            if let Some(w) = codec::vp8_keyframe_width(&pkt.payload) {
                up.rates.on_width(r, w);
            }
        }
    }
    Prepared {
        pkt,
        vp8,
        keyframe_start,
    }
}

impl FanOut {
    /// The time the fan-out's writes are made at.
    pub(super) fn now(&self) -> Instant {
        self.now
    }
}

/// One packet on its way to the receivers, with what was worked out once for all.
struct Packet<'a> {
    pkt: &'a TrackPacket,
    key: TrackKey,
    simulcast: bool,
    keyframe_start: bool,
    vp8: Option<&'a Vp8Descriptor>,
}

/// What forwarding a packet to one receiver changed, for the shard to tell.
pub(super) enum Note {
    /// It now gets this simulcast layer.
    Switched(Rid),
    /// It cannot decode the publisher's codec (said once per codec).
    Undecodable,
    /// It decodes the publisher's video again.
    Decodable,
}

/// Reads, changing nothing, what [`write_down`] to this receiver touches first (its
/// down track's state, its `Rtc`'s send stream), so that those cache misses overlap
/// the write before it.
fn warm_down(local: &Local, key: TrackKey) {
    let Some(down) = local.down.get(&key) else {
        return;
    };
    if let (DownState::Open(mid), Some(driver)) = (down.state, local.rtc.as_ref()) {
        driver.rtc().warm_write(mid);
    }
}

/// Writes `p` to one receiver, if it is for it: the layer it gets (switching to the
/// wanted one on a keyframe, asking for one otherwise), after its first keyframe.
fn write_down(
    now: Instant,
    local: &mut Local,
    p: &Packet<'_>,
    drained: &mut crate::sfu::driver::Drained,
    wants_keyframe: &mut Vec<Option<Rid>>,
    mut note: impl FnMut(Note),
) -> Written {
    let Local {
        rtc,
        down,
        connected_at,
        undecodable_from,
        ..
    } = local;
    let Some(down) = down.get_mut(&p.key) else {
        return Written::Skipped;
    };
    let DownState::Open(down_mid) = down.state else {
        return Written::Skipped;
    };
    // str0m drops writes before DTLS is up; keep waiting for a keyframe until then.
    let (Some(_), Some(driver)) = (connected_at, rtc.as_mut()) else {
        return Written::Skipped;
    };
    let pkt = p.pkt;
    let rid = pkt.rid;
    // A codec this receiver did not negotiate: nothing to forward, and until it can
    // decode something, no keyframe is spent on it.
    let Some(pt) = down.map_pt(driver.rtc(), down_mid, &pkt.params) else {
        let codec = pkt.params.spec().codec;
        if down.undecodable != Some(codec) {
            down.undecodable = Some(codec);
            note(Note::Undecodable);
        }
        return Written::Skipped;
    };
    down.undecodable = None;
    if down.kind == MediaKind::Video && !undecodable_from.is_empty() {
        // Told it could not decode this publisher (on this track, or on one that
        // ended since): it can now.
        let before = undecodable_from.len();
        undecodable_from.retain(|id| *id != p.key.0);
        if undecodable_from.len() != before {
            note(Note::Decodable);
        }
    }
    if p.simulcast {
        // One layer per receiver: the current one, until the wanted one starts with a
        // keyframe (the decoder can only join a stream there).
        let target = down.selector.target();
        if rid == target && target != down.layer {
            if p.keyframe_start {
                down.layer = target;
                if let Some(t) = target {
                    note(Note::Switched(t));
                }
            } else {
                if !wants_keyframe.contains(&target) {
                    wants_keyframe.push(target);
                }
                if down.layer.is_none() {
                    return Written::Skipped;
                }
            }
        }
        if rid != down.layer {
            return Written::Skipped;
        }
    } else if down.waiting_keyframe {
        if !p.keyframe_start {
            if !wants_keyframe.contains(&None) {
                wants_keyframe.push(None);
            }
            return Written::Skipped;
        }
        down.waiting_keyframe = false;
    }
    let clock_rate = pkt.params.spec().clock_rate.get();
    let generation = pkt.ssrc;
    let Some(rw) = down
        .rewriter
        .rewrite(generation, pkt.seq_no, pkt.rtp_time, now, clock_rate)
    else {
        return Written::Skipped;
    };
    let mut write = RtpWrite::new(pt, rw.seq.into(), rw.ts, pkt.received, pkt.payload.clone())
        .marker(pkt.marker)
        .ext_vals(pkt.ext.clone())
        .nackable(nackable(pkt.params.spec().codec));
    if let Some(patch) = p.vp8.and_then(|d| down.vp8.patch(generation, d)) {
        write = write.vp8_patch(patch);
    }
    // Sent at once, unpaced: the packet leaves in the drain that follows, with no
    // timeout in between (see crates/str0m/PATCH.md).
    let wrote = driver.mutate_at(now, drained, |rtc, now| {
        rtc.direct_api().write_rtp_at(now, down_mid, None, write)
    });
    match wrote {
        Ok(Some(offered)) => Written::Sent { offered },
        Ok(None) => Written::Skipped,
        Err(e) => Written::Failed(e),
    }
}
