// @ts-check
/**
 * What a call session does with each message of the server, by type: the handler
 * table of `CallSession.onMessage` (session.js), one entry per ServerMsg type of
 * src/signaling/protocol.rs (tests/web/protocol.test.mjs checks). Each runs with the
 * session as `this` and changes it through its own methods and fields.
 */
import * as policy from './policy.js';

/** @typedef {import('./signaling.js').ServerMsg} ServerMsg */
/** @typedef {import('./session.js').CallSession} CallSession */

/**
 * What the session does with each message of the server, by type; each runs with the
 * session as `this`. Every ServerMsg type of src/signaling/protocol.rs has an entry
 * (tests/web/protocol.test.mjs checks).
 * @type {{[K in ServerMsg['type']]: (this: CallSession, msg: Extract<ServerMsg, {type: K}>) => void}}
 */
export const SERVER_MSG_HANDLERS = {
  joined(msg) {
    // The server says who speaks right after `joined`, if anyone does.
    this.serverSpeaker = null;
    if (this.path !== 'direct') this.setSpeaker(null);
    if (this.resuming && msg.id === this.id) {
      this.onResumed(msg);
      return;
    }
    this.resumeToken = msg.resume || '';
    this.nodes = msg.nodes || [];
    this.id = msg.id;
    // A new participant: nothing held yet (the server says so after a resume), not
    // recorded until the server says so (right after this).
    this.held = { audio: false, video: false, by: 0 };
    this.recording = false;
    this.mode = msg.mode;
    this.peers = new Map(msg.peers.map((p) => [p.id, p]));
    this.emit('joined', { id: msg.id, room: msg.room, mode: msg.mode });
    this.emit('peers', { peers: this.peers });
    const next = policy.onJoined(this.facts());
    if (next.startRelay) this.startRelay();
    if (this.quality !== 'auto') this.sig?.send({ type: 'quality', quality: /** @type {any} */ (this.quality) });
    if (next.waiting) this.setState('connecting', 'waiting for the other participant');
    this.sendMediaState();
    this.evaluateDirect();
  },
  peerJoined(msg) {
    this.peers.set(msg.peer.id, msg.peer);
    this.emit('peers', { peers: this.peers });
    this.evaluateDirect();
  },
  peerLeft(msg) {
    if (this.serverSpeaker === msg.id) this.serverSpeaker = null;
    if (this.speaker === msg.id) this.setSpeaker(null);
    this.peers.delete(msg.id);
    this.streams.relay.delete(msg.id);
    this.relay?.forget(msg.id);
    if (this.screens.delete(msg.id)) this.emit('screen', { peerId: msg.id, stream: null });
    this.streams.direct.delete(msg.id);
    this.emit('peers', { peers: this.peers });
    if (this.direct?.peerId === msg.id) this.closeDirect('the other participant left', false);
    this.evaluateDirect();
    if (policy.waitingAfterLeave(this.facts())) {
      this.path = null;
      this.followSpeakerSource();
      this.setState('connecting', 'waiting for the other participant');
    }
  },
  peerMedia(msg) {
    const p = this.peers.get(msg.id);
    if (p) {
      p.audio = msg.audio;
      p.video = msg.video;
      this.emit('peers', { peers: this.peers });
    }
  },
  speaker(msg) {
    this.serverSpeaker = msg.id ?? null;
    if (this.path !== 'direct') this.setSpeaker(this.serverSpeaker);
  },
  room(msg) {
    this.hostId = msg.host ?? null;
    this.locked = !!msg.locked;
    this.manyShares = !!msg.manyShares;
    if (!this.isHost) this.heldPeers.clear();
    this.emit('room', { host: this.hostId, locked: this.locked });
    this.emit('peers', { peers: this.peers });
  },
  held(msg) {
    this.held = { audio: !!msg.audio, video: !!msg.video, by: msg.by };
    this.applyHeld();
    this.emit('held', { ...this.held, refused: false });
  },
  recording(msg) {
    const changed = this.recording !== !!msg.on;
    this.recording = !!msg.on;
    this.recordingMessage = msg.message ?? null;
    this.emit('recording', { on: this.recording, message: this.recordingMessage });
    if (!changed || !this.id) return;
    // Recorded, an automatic call goes through the server; free again afterwards.
    const next = policy.onRecording(this.facts());
    if (next.resetRetries) {
      clearTimeout(this.directRetry);
      this.directRetry = undefined;
      this.directFailures = 0;
    }
    if (next.reconsider) this.evaluateDirect();
  },
  recordingAccess(msg) {
    // Only the host gets it; the page keeps it where /recordings reads it.
    this.recordingKey = msg.key;
    this.emit('recordingAccess', { key: msg.key });
  },
  peerScreen(msg) {
    const p = this.peers.get(msg.id);
    if (p) {
      p.screen = msg.screen;
      this.emit('peers', { peers: this.peers });
    }
  },
  screenRefused(msg) {
    // Someone else shares (or the server stopped ours): stop, and say why.
    this.stopScreen();
    this.emit('screenRefused', { code: msg.code, message: msg.message });
  },
  peerCodec(msg) {
    const p = this.peers.get(msg.id);
    if (p) {
      p.codecGap = msg.decodable ? null : { codec: msg.codec, switchable: !!msg.switchable };
      this.emit('peers', { peers: this.peers });
    }
  },
  sendCodec(msg) {
    // Someone cannot decode our video: send what every browser decodes (on a new
    // m-line of the same connection: see RelayLink.switchVideoCodec).
    const codec = msg.codec.toLowerCase();
    if (this.videoCodec === codec) return;
    console.info(`switching video to ${msg.codec}: ${msg.reason}`);
    this.videoCodec = codec;
    this.relay?.switchVideoCodec(codec);
  },
  peerPath(msg) {
    const p = this.peers.get(msg.id);
    if (p) {
      p.path = msg.path;
      this.emit('peers', { peers: this.peers });
    }
  },
  answer(msg) {
    this.relay?.onAnswer(msg.sdp);
  },
  offer(msg) {
    this.relay?.onOffer(msg.sdp, msg.tracks);
  },
  direct(msg) {
    this.onDirectSignal(msg.from, msg.signal);
  },
  stats(msg) {
    this.serverStats = msg.stats;
  },
  viewers(msg) {
    this.viewers = msg.count;
    // Viewers watch through the server: keep sending there even on a direct call.
    if (msg.count > 0) this.relay?.setSending(true);
    this.emit('viewers', { count: msg.count });
  },
  layer(msg) {
    this.layers.set(msg.peer, { rid: msg.rid, index: msg.index, count: msg.count, reason: msg.reason });
    this.emit('layer', { peerId: msg.peer, ...this.layers.get(msg.peer) });
  },
  error(msg) {
    this.onError(msg.code, msg.message);
  },
  // The chat is the panel's (chat.js): the session only passes it on.
  chat(msg) {
    this.emit('chat', { message: msg.message });
  },
  chatHistory(msg) {
    this.emit('chatHistory', { messages: msg.messages, canWrite: msg.canWrite, maxLength: msg.maxLength });
  },
  chatRefused(msg) {
    this.emit('chatRefused', { code: msg.code, message: msg.message });
  },
  // In a cluster, another node serves this room (instead of `joined`): the session
  // ends here, and the page opens itself on that node (app.js).
  redirect(msg) {
    this.ended = true;
    this.teardown();
    this.localStream?.getTracks().forEach((t) => t.stop());
    this.emit('redirect', { url: msg.url });
  },
};
