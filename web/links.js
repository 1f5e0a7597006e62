// @ts-check
/**
 * The two media paths of a call, each one RTCPeerConnection:
 * - RelayLink: to the server (SFU). The browser offers first; afterwards the server
 *   offers whenever others' tracks come or go.
 * - DirectLink: to the one other browser, signaled through the server.
 *
 * Links emit events and never touch the DOM:
 * - `stream`  {peerId, stream}   remote media arrived on this link
 * - `state`   {state: 'connecting'|'connected'|'delivering'|'broken'|'failed'|'closed', reason?}
 * - `screen`  {peerId, stream|null}  a participant's screen share arrived on the relay,
 *             or ended (RelayLink only)
 * - `stall`   {ms}  a delivering link received nothing for STALL_MS (fires once per stall)
 * - `silent`  {silent: true, ms} a connected link heard nothing at all (no media, no
 *             RTCP, no STUN) for SILENT_MS, long before ICE calls it disconnected
 *             (about 5 s): most often the network changed under it; then
 *             {silent: false} once it hears again
 */

/** @typedef {import('./signaling.js').Signaling} Signaling */

/** How long a direct connection may take to deliver media before it counts as failed. */
export const DIRECT_TIMEOUT_MS = 10000;
/** The simulcast layers a publisher sends: rid, size and bitrate cap of each. */
export const SIMULCAST_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** A delivering link that receives nothing for this long has stalled. */
export const STALL_MS = 1500;
/**
 * A connected link that heard something at every probe for a while (media, or the
 * server's RTCP feedback, which arrives many times a second while media flows either
 * way) and then hears nothing at all for this long has most likely lost its network.
 */
export const SILENT_MS = 1000;
/** Probes in a row that must have heard something before a silence counts. */
const STEADY_PROBES = 4;

class Link extends EventTarget {
  /** @param {'relay'|'direct'} path */
  constructor(path) {
    super();
    this.path = path;
    /** @type {RTCPeerConnection} */
    this.pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.state = 'connecting';
    this.createdAt = performance.now();
    /** Milliseconds from creation to the first decoded video frame (or audio packet). */
    this.firstFrameMs = 0;
    /** @type {Promise<void>} negotiation steps run one after another */
    this.chain = Promise.resolve();
    /** @type {RTCRtpSender[]} */
    this.senders = [];
    /** Changes of the video encodings' `active`, one after another (setVideoActive). */
    this.encodingsChain = Promise.resolve();
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.probe = undefined;
    this.closed = false;
    /** Inbound RTP bytes at the last probe, and when they last grew. */
    this.inBytes = 0;
    this.inAt = performance.now();
    this.stalled = false;
    /** Bytes the transport received (media, RTCP, STUN) at the last probe, and when
     * they last grew. */
    this.heardBytes = 0;
    this.heardAt = performance.now();
    /** Probes in a row that heard something, and how many did before the last one
     * that heard nothing (an idle link hears only ICE checks, seconds apart, and
     * never goes silent). */
    this.heardSteady = 0;
    this.steadyBefore = 0;
    this.silent = false;
    this.pc.onconnectionstatechange = () => this.onConnectionState();
  }

  /**
   * Adds the local audio and video (both m-lines always exist, so toggling devices
   * never needs renegotiation). With `simulcast`, video goes out in three layers
   * (quarter, half and full resolution) for the server to pick from per receiver.
   * @param {MediaStream | null} stream
   * @param {string} videoCodec
   * @param {boolean} [simulcast]
   */
  addLocalMedia(stream, videoCodec, simulcast = false) {
    const audio = stream?.getAudioTracks()[0] || null;
    const video = stream?.getVideoTracks()[0] || null;
    const streams = stream ? [stream] : [];
    const at = this.pc.addTransceiver(audio || 'audio', { direction: audio ? 'sendrecv' : 'recvonly', streams });
    /** @type {RTCRtpTransceiverInit} */
    const vinit = { direction: video ? 'sendrecv' : 'recvonly', streams };
    if (video && simulcast) vinit.sendEncodings = SIMULCAST_LAYERS;
    const vt = this.pc.addTransceiver(video || 'video', vinit);
    if (videoCodec) preferCodec(vt, videoCodec);
    this.senders = [at.sender, vt.sender];
    this.tracks = [audio, video];
    this.localStreams = streams;
    this.simulcast = simulcast;
    /** The transceiver the camera is sent on. */
    this.videoTransceiver = vt;
  }

  /**
   * Sends the camera in codec `name` from now on. An m-line keeps the codecs it was
   * first negotiated with (str0m), so the camera moves to a new m-line that prefers
   * `name`, and the old one goes inactive; the server ends the old track and offers
   * the new one to everyone, who see the same participant carry on.
   * @param {string} name
   */
  switchVideoCodec(name) {
    this.enqueue(async () => {
      const old = this.videoTransceiver;
      const video = this.tracks?.[1];
      if (!old || !video || this.pc.signalingState !== 'stable') return;
      /** @type {RTCRtpTransceiverInit} */
      const init = { direction: 'sendrecv', streams: this.localStreams || [] };
      if (this.simulcast) init.sendEncodings = SIMULCAST_LAYERS;
      const vt = this.pc.addTransceiver(video, init);
      preferCodec(vt, name);
      old.direction = 'inactive';
      await old.sender.replaceTrack(null).catch(() => {});
      this.videoTransceiver = vt;
      this.senders[1] = vt.sender;
      if (this.sending === false) this.setSending(false);
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.sig.send({ type: 'offer', sdp: offer.sdp || '' });
    });
  }

  /**
   * Sends the local media on this link, or stops sending (keeps the connection).
   *
   * Taking the tracks off the senders stops the encoders, and Chromium then sends
   * nothing; Firefox keeps its video stream alive with padding at the bandwidth it
   * had estimated (about 2 Mbit/s to the relay, for nothing). Turning the video
   * encodings inactive as well stops that stream in every browser.
   * @param {boolean} on
   */
  setSending(on) {
    this.senders.forEach((s, i) => {
      const want = on ? this.tracks?.[i] || null : null;
      if (s.track !== want) s.replaceTrack(want).catch(() => {});
    });
    this.sending = on;
    const video = this.senders.find((_, i) => this.tracks?.[i]?.kind === 'video');
    if (video) this.encodingsChain = this.encodingsChain.then(() => this.setVideoActive(video));
  }

  /**
   * Makes the video sender's encodings active while this link sends, inactive while
   * it does not. One call at a time (`encodingsChain`): a `setParameters` while
   * another is under way is refused; each reads `sending` when it runs, so the last
   * `setSending` wins.
   * @param {RTCRtpSender} sender
   */
  async setVideoActive(sender) {
    if (this.closed) return;
    const active = !!this.sending;
    const params = sender.getParameters();
    if (!params.encodings?.length || params.encodings.every((e) => e.active === active)) return;
    params.encodings.forEach((e) => (e.active = active));
    await sender.setParameters(params).catch((e) => console.warn(`${this.path}: cannot turn video ${active ? 'on' : 'off'}`, e));
  }

  onConnectionState() {
    const s = this.pc.connectionState;
    if (s === 'connected') {
      // 'broken' too: an ICE restart brought the same connection back.
      if (this.state === 'connecting' || this.state === 'broken') this.setState('connected');
      this.startProbe();
    } else if (s === 'disconnected' || s === 'failed') {
      if (this.state === 'connecting') {
        if (s === 'failed') this.setState('failed', 'ICE failed: no network route between the two ends');
      } else if (this.state !== 'failed' && this.state !== 'closed') {
        this.setState('broken', s === 'failed' ? 'the connection failed' : 'the connection was interrupted');
      }
    }
  }

  /** Watches the inbound stats until media is decoded: then the link is 'delivering'. */
  startProbe() {
    if (this.probe) return;
    this.probe = setInterval(async () => {
      if (this.closed) return;
      const report = await this.pc.getStats().catch(() => null);
      if (!report) return;
      let frames = 0;
      let audio = 0;
      let bytes = 0;
      let hasVideo = false;
      let heard = 0;
      // Firefox has no transport stats: its candidate pairs count the bytes instead.
      let pairBytes = 0;
      let transports = 0;
      report.forEach((r) => {
        if (r.type === 'transport') {
          transports += 1;
          heard += r.bytesReceived || 0;
        }
        if (r.type === 'candidate-pair') pairBytes += r.bytesReceived || 0;
        if (r.type !== 'inbound-rtp') return;
        bytes += r.bytesReceived || 0;
        if (r.kind === 'video') {
          hasVideo = true;
          frames += r.framesDecoded || 0;
        } else {
          audio += r.packetsReceived || 0;
        }
      });
      if (!transports) heard = pairBytes;
      const now = performance.now();
      if (heard > this.heardBytes) {
        this.heardBytes = heard;
        this.heardAt = now;
        this.heardSteady += 1;
        if (this.silent) {
          this.silent = false;
          this.dispatchEvent(new CustomEvent('silent', { detail: { silent: false } }));
        }
      } else {
        if (this.heardSteady > 0) this.steadyBefore = this.heardSteady;
        this.heardSteady = 0;
      }
      if (!this.silent && this.heardSteady === 0 && this.steadyBefore >= STEADY_PROBES && this.pc.connectionState === 'connected' && now - this.heardAt > SILENT_MS) {
        this.silent = true;
        this.dispatchEvent(new CustomEvent('silent', { detail: { silent: true, ms: Math.round(now - this.heardAt) } }));
      }
      if (bytes > this.inBytes) {
        this.inBytes = bytes;
        this.inAt = now;
        this.stalled = false;
      } else if (this.state === 'delivering' && !this.stalled && now - this.inAt > STALL_MS) {
        this.stalled = true;
        this.dispatchEvent(new CustomEvent('stall', { detail: { ms: Math.round(now - this.inAt) } }));
      }
      if (frames > 0 || (!hasVideo && audio > 0)) {
        if (!this.firstFrameMs) this.firstFrameMs = Math.round(now - this.createdAt);
        if (this.state === 'connected' || this.state === 'connecting') this.setState('delivering');
      }
    }, 250);
  }

  /**
   * @param {string} state
   * @param {string} [reason]
   */
  setState(state, reason) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, reason } }));
  }

  /** @param {() => Promise<void>} step */
  enqueue(step) {
    this.chain = this.chain.then(step).catch((e) => {
      console.error(`${this.path} negotiation failed`, e);
      if (!this.closed) this.setState('failed', `negotiation failed: ${e?.message || e}`);
    });
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probe);
    this.pc.onconnectionstatechange = null;
    this.pc.close();
    this.setState('closed');
  }
}

/** The connection to the server. */
export class RelayLink extends Link {
  /**
   * @param {Signaling} sig
   * @param {MediaStream | null} stream
   * @param {string} videoCodec
   * @param {boolean} [simulcast]
   */
  constructor(sig, stream, videoCodec, simulcast = false) {
    super('relay');
    this.sig = sig;
    this.videoCodec = videoCodec;
    this.addLocalMedia(stream, videoCodec, simulcast);
    this.pc.onicecandidate = (ev) => {
      if (ev.candidate) {
        sig.send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid });
      }
    };
    /**
     * Whose track each m-line carries, and what it is, from the server's latest
     * offer. The server reuses the m-lines of tracks that ended, so an m-line's
     * stream id names the participant it was first opened for, who may be gone, and
     * an m-line that carried a camera may carry a screen next.
     * @type {Map<string, {peer: number, source: string}>}
     */
    this.owners = new Map();
    /**
     * One stream per participant, made of the tracks of the m-lines it owns (its
     * camera and microphone).
     * @type {Map<number, MediaStream>}
     */
    this.peerStreams = new Map();
    /**
     * Participants' screen shares: one stream each, its one video track.
     * @type {Map<number, {mid: string, stream: MediaStream}>}
     */
    this.screens = new Map();
    /** The transceiver this page's own screen share goes out on (kept for the next). */
    /** @type {RTCRtpTransceiver | null} */
    this.screenTransceiver = null;
    this.pc.ontrack = (ev) => {
      const mid = ev.transceiver?.mid ?? null;
      const owner = mid === null ? undefined : this.owners.get(mid);
      const s = ev.streams[0];
      const peerId = owner?.peer ?? (s ? Number(s.id) : NaN);
      if (!Number.isFinite(peerId)) return;
      if (owner?.source === 'screen' && mid !== null) {
        this.setScreen(peerId, mid, ev.track);
        return;
      }
      const had = this.peerStreams.get(peerId)?.getTracks() || [];
      if (had.includes(ev.track)) return;
      // A new stream object each time its tracks change, so that a video element
      // showing it picks the change up (srcObject is set again).
      this.setPeerStream(peerId, [...had, ev.track]);
    };
    this.enqueue(async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      sig.send({ type: 'offer', sdp: offer.sdp || '' });
    });
  }

  /** @param {string} sdp */
  onAnswer(sdp) {
    this.enqueue(async () => {
      if (this.pc.signalingState !== 'have-local-offer') return;
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    });
  }

  /**
   * After the signaling connection was resumed: an offer of ours that the server may
   * never have seen is taken back, and unless the connection is up, ICE restarts (a
   * new network: new candidates, new credentials) on this same connection, so the
   * server moves it to the new address and nobody sees the call rebuilt.
   */
  /** @param {boolean} [restart] restart ICE even if the connection still looks up
   * (it went silent: the browser has not noticed yet) */
  recover(restart = false) {
    this.enqueue(async () => {
      const pc = this.pc;
      const lostOffer = pc.signalingState === 'have-local-offer';
      if (lostOffer) await pc.setLocalDescription({ type: 'rollback' });
      const up = pc.connectionState === 'connected' && !restart;
      if (up && !lostOffer) return;
      if (!up) pc.restartIce();
      const offer = await pc.createOffer({ iceRestart: !up });
      await pc.setLocalDescription(offer);
      this.sig.send({ type: 'offer', sdp: offer.sdp || '' });
    });
  }

  /**
   * @param {string} sdp
   * @param {import('./signaling.js').MidOwner[]} [tracks] whose track each sending m-line carries
   */
  onOffer(sdp, tracks = []) {
    this.enqueue(async () => {
      // Our own offer is out: the server (polite) re-offers after answering it.
      if (this.pc.signalingState !== 'stable') return;
      this.setOwners(tracks);
      await this.pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
      this.sig.send({ type: 'answer', sdp: answer.sdp || '' });
    });
  }

  /**
   * Takes the m-line owners of a new offer: a track whose m-line now carries someone
   * else's track, another kind of track (a screen instead of a camera) or nothing
   * leaves its old owner's stream (or screen).
   * @param {import('./signaling.js').MidOwner[]} tracks
   */
  setOwners(tracks) {
    const next = new Map(tracks.map((t) => [t.mid, { peer: t.peer, source: t.source || 'camera' }]));
    for (const t of this.pc.getTransceivers()) {
      const mid = t.mid;
      if (mid === null) continue;
      const was = this.owners.get(mid);
      const now = next.get(mid);
      if (was === undefined || (now && now.peer === was.peer && now.source === was.source)) continue;
      if (was.source === 'screen') {
        if (this.screens.get(was.peer)?.mid === mid) this.setScreen(was.peer, mid, null);
        continue;
      }
      const had = this.peerStreams.get(was.peer);
      if (had?.getTracks().includes(t.receiver.track)) {
        this.setPeerStream(was.peer, had.getTracks().filter((k) => k !== t.receiver.track));
      }
    }
    this.owners = next;
    // An m-line that carries a screen now but already had its track (a reused
    // m-line whose direction did not change) gets no new `track` event.
    for (const t of this.pc.getTransceivers()) {
      const o = t.mid === null ? undefined : next.get(t.mid);
      if (o?.source === 'screen' && t.mid !== null && this.screens.get(o.peer)?.mid !== t.mid && t.currentDirection?.includes('recv')) {
        this.setScreen(o.peer, t.mid, t.receiver.track);
      }
    }
  }

  /**
   * Participant `peerId`'s screen share is now `track` on m-line `mid` (null: it
   * ended).
   * @param {number} peerId
   * @param {string} mid
   * @param {MediaStreamTrack | null} track
   */
  setScreen(peerId, mid, track) {
    if (track) this.screens.set(peerId, { mid, stream: new MediaStream([track]) });
    else this.screens.delete(peerId);
    const stream = this.screens.get(peerId)?.stream || null;
    this.dispatchEvent(new CustomEvent('screen', { detail: { peerId, stream } }));
  }

  /**
   * Sends `track`, a captured screen, on its own m-line (send-only; the camera goes
   * on): tells the server which m-line it is (`screen`), then offers it. The
   * transceiver of an earlier share is used again. `simulcast`: three layers like the
   * camera; else one layer that keeps its resolution (text stays sharp) and lowers
   * its frame rate when the bandwidth is short.
   * @param {MediaStreamTrack} track
   * @param {boolean} simulcast
   */
  startScreen(track, simulcast) {
    this.enqueue(async () => {
      if (this.pc.signalingState !== 'stable') {
        // An exchange is under way: after it.
        setTimeout(() => this.startScreen(track, simulcast), 100);
        return;
      }
      let t = this.screenTransceiver;
      if (t && !t.stopped) {
        t.direction = 'sendonly';
        await t.sender.replaceTrack(track);
      } else {
        /** @type {RTCRtpTransceiverInit} */
        const init = { direction: 'sendonly', streams: [] };
        if (simulcast) init.sendEncodings = SIMULCAST_LAYERS;
        t = this.pc.addTransceiver(track, init);
        if (this.videoCodec) preferCodec(t, this.videoCodec);
        this.screenTransceiver = t;
      }
      if (!simulcast) {
        const params = t.sender.getParameters();
        params.degradationPreference = 'maintain-resolution';
        await t.sender.setParameters(params).catch((e) => console.warn('screen: degradation preference', e));
      }
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.sig.send({ type: 'screen', mid: t.mid });
      this.sig.send({ type: 'offer', sdp: offer.sdp || '' });
    });
  }

  /** Stops sending this page's screen share: its m-line goes inactive. */
  stopScreen() {
    this.enqueue(async () => {
      const t = this.screenTransceiver;
      if (!t || t.stopped || t.direction === 'inactive') return;
      if (this.pc.signalingState !== 'stable') {
        setTimeout(() => this.stopScreen(), 100);
        return;
      }
      this.sig.send({ type: 'screen', mid: null });
      t.direction = 'inactive';
      await t.sender.replaceTrack(null).catch(() => {});
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      this.sig.send({ type: 'offer', sdp: offer.sdp || '' });
    });
  }

  /**
   * Participant `peerId`'s stream is now made of `tracks`.
   * @param {number} peerId
   * @param {MediaStreamTrack[]} tracks
   */
  setPeerStream(peerId, tracks) {
    const stream = new MediaStream(tracks);
    this.peerStreams.set(peerId, stream);
    this.dispatchEvent(new CustomEvent('stream', { detail: { peerId, stream } }));
  }

  /**
   * A participant left: its stream is forgotten.
   * @param {number} peerId
   */
  forget(peerId) {
    this.peerStreams.delete(peerId);
    if (this.screens.has(peerId)) this.setScreen(peerId, '', null);
  }
}

/** The peer-to-peer connection to the one other participant. */
export class DirectLink extends Link {
  /**
   * @param {Signaling} sig
   * @param {number} peerId the other participant
   * @param {boolean} initiator whether this side makes the offer
   * @param {MediaStream | null} stream
   * @param {string} videoCodec
   * @param {number} [timeoutMs]
   */
  constructor(sig, peerId, initiator, stream, videoCodec, timeoutMs = DIRECT_TIMEOUT_MS) {
    super('direct');
    this.sig = sig;
    this.peerId = peerId;
    this.initiator = initiator;
    /** Candidates that arrived before the remote description. */
    /** @type {RTCIceCandidateInit[]} */
    this.early = [];
    this.stream = stream;
    this.videoCodec = videoCodec;
    // The offerer creates the m-lines; the answerer attaches its media to the ones
    // the offer creates (transceivers added before the offer would not match them).
    if (initiator) this.addLocalMedia(stream, videoCodec);
    this.pc.onicecandidate = (ev) => {
      if (!ev.candidate) return;
      this.send({
        kind: 'candidate',
        candidate: ev.candidate.candidate,
        sdpMid: ev.candidate.sdpMid,
        sdpMLineIndex: ev.candidate.sdpMLineIndex,
      });
    };
    this.pc.ontrack = (ev) => {
      const s = ev.streams[0];
      if (s) this.dispatchEvent(new CustomEvent('stream', { detail: { peerId, stream: s } }));
    };
    this.timer = setTimeout(() => {
      if (this.state === 'connecting' || this.state === 'connected') {
        const ice = this.pc.iceConnectionState;
        this.setState('failed', `no direct media within ${Math.round(timeoutMs / 1000)} s (ICE ${ice}): the two devices cannot reach each other`);
      }
    }, timeoutMs);
    if (initiator) {
      this.enqueue(async () => {
        const offer = await this.pc.createOffer();
        await this.pc.setLocalDescription(offer);
        this.send({ kind: 'offer', sdp: offer.sdp || '' });
      });
    }
  }

  /** @param {any} signal */
  send(signal) {
    this.sig.send({ type: 'direct', to: this.peerId, signal });
  }

  /** @param {any} signal a DirectSignal of kind offer, answer or candidate */
  onSignal(signal) {
    const pc = this.pc;
    if (signal.kind === 'offer') {
      this.enqueue(async () => {
        await pc.setRemoteDescription({ type: 'offer', sdp: signal.sdp });
        if (!this.initiator && !this.senders.length) this.attachLocalMedia();
        await this.flushEarly();
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.send({ kind: 'answer', sdp: answer.sdp || '' });
      });
    } else if (signal.kind === 'answer') {
      this.enqueue(async () => {
        if (pc.signalingState !== 'have-local-offer') return;
        await pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp });
        await this.flushEarly();
      });
    } else if (signal.kind === 'candidate') {
      const c = { candidate: signal.candidate, sdpMid: signal.sdpMid, sdpMLineIndex: signal.sdpMLineIndex };
      this.enqueue(async () => {
        if (!pc.remoteDescription) {
          this.early.push(c);
          return;
        }
        await pc.addIceCandidate(c).catch((e) => console.warn('direct candidate refused', e));
      });
    }
  }

  /** Answerer: sends the local audio and video on the offer's m-lines. */
  attachLocalMedia() {
    const stream = this.stream;
    const tracks = { audio: stream?.getAudioTracks()[0] || null, video: stream?.getVideoTracks()[0] || null };
    /** @type {RTCRtpSender[]} */
    const senders = [];
    /** @type {(MediaStreamTrack | null)[]} */
    const ordered = [];
    for (const kind of /** @type {const} */ (['audio', 'video'])) {
      const tr = this.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && !t.stopped);
      if (!tr) continue;
      const track = tracks[kind];
      if (track) {
        tr.direction = 'sendrecv';
        tr.sender.replaceTrack(track);
        if (stream) tr.sender.setStreams(stream);
      }
      if (kind === 'video' && this.videoCodec) preferCodec(tr, this.videoCodec);
      senders.push(tr.sender);
      ordered.push(track);
    }
    this.senders = senders;
    this.tracks = ordered;
  }

  async flushEarly() {
    const early = this.early.splice(0);
    for (const c of early) await this.pc.addIceCandidate(c).catch(() => {});
  }

  /** @param {string} state @param {string} [reason] */
  setState(state, reason) {
    if (state !== 'connecting' && state !== 'connected') clearTimeout(this.timer);
    super.setState(state, reason);
  }

  /** @param {string} [reason] */
  close(reason) {
    clearTimeout(this.timer);
    if (!this.closed && reason) this.send({ kind: 'bye', reason });
    super.close();
  }
}

/**
 * Puts the codec named `name` (e.g. 'h264') first and only, keeping retransmission.
 * @param {RTCRtpTransceiver} transceiver
 * @param {string} name
 */
function preferCodec(transceiver, name) {
  const caps = RTCRtpReceiver.getCapabilities('video');
  if (!caps || !transceiver.setCodecPreferences) return;
  const wanted = caps.codecs.filter((c) => c.mimeType.toLowerCase() === `video/${name}`);
  if (!wanted.length) {
    console.warn(`video codec ${name} not available; using the browser's default`);
    return;
  }
  const rtx = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'video/rtx');
  transceiver.setCodecPreferences([...wanted, ...rtx]);
}
