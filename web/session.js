// @ts-check
/**
 * One call: local media, the signaling connection, and the media paths. Chooses the
 * path that carries the call and emits events for the UI; never touches the DOM.
 *
 * Modes (chosen by whoever opens the room; joiners follow):
 * - relay:  media through the server only.
 * - direct: media peer to peer only (two participants); when the direct connection
 *           cannot be established the session says so (state `failed` with
 *           `canRelay`) and `switchToRelay()` moves the call to the server.
 * - auto:   the call starts relayed, a direct connection is tried in the background
 *           (two participants only) and takes over once it delivers media; when it
 *           breaks the call falls back to relay at once and direct is retried later.
 *
 * Each side chooses the path it *receives* on and tells the other (`using`), which
 * then sends there; that is how a switch happens without dropping the call.
 *
 * Events (CustomEvent detail):
 * - `state`   {state: 'connecting'|'connected'|'reconnecting'|'failed'|'ended', reason?, path?, canRelay?}
 * - `path`    {path: 'relay'|'direct', reason}     the path media is received on changed
 * - `peers`   {peers: Map<number, PeerInfo>}
 * - `stream`  {peerId, stream, path}              media of a participant arrived on a path
 * - `stats`   {relay?, direct?, server?}          once a second, see stats.js
 * - `joined`  {id, room, mode}
 */
import { Signaling, defaultUrl } from './signaling.js';
import { RelayLink, DirectLink, DIRECT_TIMEOUT_MS } from './links.js';
import { StatsCollector, buildReport } from './stats.js';

/** @typedef {import('./signaling.js').PeerInfo} PeerInfo */
/** @typedef {import('./signaling.js').ServerMsg} ServerMsg */
/** @typedef {'relay'|'direct'} PathName */

/** How long ICE to the server may stay disconnected before the call is rebuilt. */
const ICE_GRACE_MS = 4000;
/** Reconnection attempts before giving up. */
const MAX_RETRIES = 5;
/** Delays before trying a direct connection again in auto mode. */
const DIRECT_RETRY_MS = [15000, 30000, 60000];
/** Keep sending on the relay this long after the other side moved to direct. */
const RELAY_GRACE_MS = 1500;

export class CallSession extends EventTarget {
  /**
   * @param {{room: string, name: string, url?: string, videoCodec?: string,
   *          mode?: string, directTimeoutMs?: number, role?: string, simulcast?: boolean,
   *          token?: string}} opts
   */
  constructor(opts) {
    super();
    /** 'participant', or 'viewer' (receives only, relayed). */
    this.role = opts.role === 'viewer' ? 'viewer' : 'participant';
    /** Send video to the server in three layers. */
    this.simulcast = opts.simulcast !== false;
    /** The room's token, for rooms that need one. */
    this.token = opts.token || '';
    /** How many viewers watch the room. */
    this.viewers = 0;
    /** The simulcast layer the server forwards, per participant. */
    /** @type {Map<number, {rid: string, index: number, count: number, reason: string}>} */
    this.layers = new Map();
    this.quality = 'auto';
    this.room = opts.room;
    this.name = opts.name;
    this.url = opts.url || defaultUrl();
    /** Preferred video codec to send ('vp8', 'h264'); empty lets the browser choose. */
    this.videoCodec = (opts.videoCodec || '').toLowerCase();
    /** The mode asked for; `mode` becomes the room's once joined. */
    this.requestedMode = ['relay', 'direct', 'auto'].includes(opts.mode || '') ? opts.mode : 'auto';
    if (this.role === 'viewer') this.requestedMode = 'relay';
    this.mode = this.requestedMode;
    this.directTimeoutMs = opts.directTimeoutMs || DIRECT_TIMEOUT_MS;
    /** @type {MediaStream | null} */
    this.localStream = null;
    /** @type {Signaling | null} */
    this.sig = null;
    /** @type {RelayLink | null} */
    this.relay = null;
    /** @type {DirectLink | null} */
    this.direct = null;
    /** @type {Map<number, PeerInfo>} */
    this.peers = new Map();
    /** Remote streams by participant, per path. */
    /** @type {{relay: Map<number, MediaStream>, direct: Map<number, MediaStream>}} */
    this.streams = { relay: new Map(), direct: new Map() };
    this.id = 0;
    this.micOn = true;
    this.camOn = true;
    this.state = 'idle';
    /** @type {PathName | null} the path this side receives on */
    this.path = null;
    this.pathReason = '';
    /** @type {{at: number, path: PathName, reason: string}[]} */
    this.pathLog = [];
    /** @type {PathName | null} a path pinned by a comparison run */
    this.forced = null;
    /** The user moved a failed direct call to the relay. */
    this.relayChosen = false;
    this.retries = 0;
    this.directFailures = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.directRetry = undefined;
    this.lastDirectFailure = '';
    this.ended = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.iceTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.relayQuiet = undefined;
    this.connectMs = 0;
    this.startedAt = 0;
    /** The server's latest measurements of our relayed legs. */
    this.serverStats = null;
    this.collector = new StatsCollector(this);
  }

  /** The connection of the active path (for stats and tests). */
  get pc() {
    if (this.path === 'direct' && this.direct) return this.direct.pc;
    return this.relay?.pc || this.direct?.pc || null;
  }

  /** The other participant, when there is exactly one. */
  get onlyPeer() {
    return this.peers.size === 1 ? [...this.peers.keys()][0] : null;
  }

  /** Gets the camera and microphone, then joins. */
  async start() {
    this.startedAt = performance.now();
    this.setState('connecting');
    this.localStream = this.role === 'viewer' ? null : await getLocalMedia();
    this.collector.start();
    await this.connect();
  }

  async connect() {
    this.teardown();
    const sig = new Signaling(this.url);
    this.sig = sig;
    sig.addEventListener('message', (ev) => this.onMessage(/** @type {CustomEvent} */ (ev).detail));
    sig.addEventListener('close', () => {
      if (this.sig === sig) this.retry('lost the connection to the server');
    });
    try {
      await sig.open();
    } catch (e) {
      this.retry('cannot reach the server');
      return;
    }
    sig.send({
      type: 'join',
      room: this.room,
      name: this.name,
      role: /** @type {any} */ (this.role),
      mode: /** @type {any} */ (this.requestedMode),
      ...(this.token ? { token: this.token } : {}),
    });
  }

  /** @param {ServerMsg} msg */
  onMessage(msg) {
    switch (msg.type) {
      case 'joined':
        this.id = msg.id;
        this.mode = msg.mode;
        this.peers = new Map(msg.peers.map((p) => [p.id, p]));
        this.emit('joined', { id: msg.id, room: msg.room, mode: msg.mode });
        this.emit('peers', { peers: this.peers });
        if (this.mode !== 'direct' || this.relayChosen || this.role === 'viewer') this.startRelay();
        if (this.quality !== 'auto') this.sig?.send({ type: 'quality', quality: /** @type {any} */ (this.quality) });
        if (this.mode === 'direct' && !this.relayChosen && this.peers.size === 0) {
          this.setState('connecting', 'waiting for the other participant');
        }
        this.sendMediaState();
        this.evaluateDirect();
        break;
      case 'peerJoined':
        this.peers.set(msg.peer.id, msg.peer);
        this.emit('peers', { peers: this.peers });
        this.evaluateDirect();
        break;
      case 'peerLeft':
        this.peers.delete(msg.id);
        this.streams.relay.delete(msg.id);
        this.streams.direct.delete(msg.id);
        this.emit('peers', { peers: this.peers });
        if (this.direct?.peerId === msg.id) this.closeDirect('the other participant left', false);
        this.evaluateDirect();
        if (this.mode === 'direct' && !this.relay && this.peers.size === 0) {
          this.path = null;
          this.setState('connecting', 'waiting for the other participant');
        }
        break;
      case 'peerMedia':
      case 'peerPath': {
        const p = this.peers.get(msg.id);
        if (p) {
          if (msg.type === 'peerMedia') {
            p.audio = msg.audio;
            p.video = msg.video;
          } else {
            p.path = msg.path;
          }
          this.emit('peers', { peers: this.peers });
        }
        break;
      }
      case 'answer':
        this.relay?.onAnswer(msg.sdp);
        break;
      case 'offer':
        this.relay?.onOffer(msg.sdp);
        break;
      case 'direct':
        this.onDirectSignal(msg.from, msg.signal);
        break;
      case 'stats':
        this.serverStats = msg.stats;
        break;
      case 'viewers':
        this.viewers = msg.count;
        // Viewers watch through the server: keep sending there even on a direct call.
        if (msg.count > 0) this.relay?.setSending(true);
        this.emit('viewers', { count: msg.count });
        break;
      case 'layer':
        this.layers.set(msg.peer, { rid: msg.rid, index: msg.index, count: msg.count, reason: msg.reason });
        this.emit('layer', { peerId: msg.peer, ...this.layers.get(msg.peer) });
        break;
      case 'error':
        this.onError(msg.code, msg.message);
        break;
    }
  }

  /**
   * @param {string} code
   * @param {string} message
   */
  onError(code, message) {
    console.warn('server error', code, message);
    if (code === 'roomFull' || code === 'badName' || code === 'forbidden') {
      this.fail(message);
    } else if (code === 'mediaFailed') {
      if (this.path === 'direct') {
        this.relay?.close();
        this.relay = null;
      } else {
        this.retry(message);
      }
    }
  }

  // ---- relay path ---------------------------------------------------------------

  startRelay() {
    if (this.relay || !this.sig) return;
    const link = new RelayLink(this.sig, this.localStream, this.videoCodec, this.simulcast);
    this.relay = link;
    link.addEventListener('stream', (ev) => {
      const { peerId, stream } = /** @type {CustomEvent} */ (ev).detail;
      this.streams.relay.set(peerId, stream);
      this.emit('stream', { peerId, stream, path: 'relay' });
    });
    link.addEventListener('state', (ev) => this.onRelayState(link, /** @type {CustomEvent} */ (ev).detail));
    // Someone already receiving directly from us needs nothing on the relay.
    if (this.peerUsing === 'direct' && this.direct?.state === 'delivering') link.setSending(false);
  }

  /**
   * @param {RelayLink} link
   * @param {{state: string, reason?: string}} d
   */
  onRelayState(link, d) {
    if (link !== this.relay) return;
    if (d.state === 'connected') {
      clearTimeout(this.iceTimer);
      this.retries = 0;
      if (!this.path) this.switchPath('relay', 'connected to the server');
      else this.announce();
    } else if (d.state === 'broken') {
      if (this.path === 'direct') return;
      this.setState('reconnecting', 'media path to the server interrupted');
      clearTimeout(this.iceTimer);
      const pc = link.pc;
      this.iceTimer = setTimeout(() => {
        if (this.relay === link && pc.connectionState !== 'connected') this.retry('media path to the server lost');
      }, ICE_GRACE_MS);
    } else if (d.state === 'failed') {
      if (this.path !== 'direct') this.retry(d.reason || 'media connection to the server failed');
    }
  }

  // ---- direct path --------------------------------------------------------------

  /** Starts or stops the direct connection as the room and mode require. */
  evaluateDirect() {
    const peer = this.onlyPeer;
    const wanted = peer !== null && !this.relayChosen && (this.mode === 'direct' || this.mode === 'auto');
    if (!wanted) {
      if (this.direct) {
        this.closeDirect(this.peers.size > 1 ? 'more than two participants: the call stays relayed' : 'direct path not used', true);
      }
      if (this.peers.size > 1 && this.path !== 'relay' && this.relay) {
        this.switchPath('relay', 'more than two participants: the call stays relayed');
      }
      return;
    }
    if (this.direct && this.direct.peerId === peer) return;
    if (this.directRetry) return;
    // The newer participant (higher id) offers; the other waits for its offer.
    if (this.id > peer) this.startDirect(peer);
  }

  /** @param {number} peerId */
  startDirect(peerId) {
    if (!this.sig) return null;
    this.direct?.close();
    const link = new DirectLink(this.sig, peerId, this.id > peerId, this.localStream, this.videoCodec, this.directTimeoutMs);
    this.direct = link;
    this.peerUsing = this.mode === 'direct' ? 'direct' : this.peerUsing || 'relay';
    link.addEventListener('stream', (ev) => {
      const { stream } = /** @type {CustomEvent} */ (ev).detail;
      this.streams.direct.set(peerId, stream);
      this.emit('stream', { peerId, stream, path: 'direct' });
    });
    link.addEventListener('state', (ev) => this.onDirectState(link, /** @type {CustomEvent} */ (ev).detail));
    link.addEventListener('stall', (ev) => {
      // Receiving on the direct path and nothing arrives: fall back now rather than
      // wait for ICE to notice.
      if (link !== this.direct || this.path !== 'direct' || this.forced === 'direct') return;
      const { ms } = /** @type {CustomEvent} */ (ev).detail;
      this.closeDirect(`no media for ${ms} ms`, true);
      this.directFailed(`direct path broke: no media for ${ms} ms`);
    });
    return link;
  }

  /**
   * @param {number} from
   * @param {any} signal
   */
  onDirectSignal(from, signal) {
    switch (signal.kind) {
      case 'offer':
        if (this.relayChosen || this.mode === 'relay' || this.peers.size !== 1) {
          this.sig?.send({ type: 'direct', to: from, signal: { kind: 'bye', reason: 'this side does not use a direct path' } });
          return;
        }
        clearTimeout(this.directRetry);
        this.directRetry = undefined;
        if (!this.direct || this.direct.peerId !== from || this.direct.initiator) this.startDirect(from);
        this.direct?.onSignal(signal);
        break;
      case 'answer':
      case 'candidate':
        if (this.direct?.peerId === from) this.direct.onSignal(signal);
        break;
      case 'using':
        this.onPeerUsing(signal.path);
        break;
      case 'force':
        this.forced = signal.path || null;
        if (this.forced) this.receiveOn(this.forced, 'comparison run');
        else this.settlePath('comparison run finished');
        break;
      case 'bye':
        if (this.direct?.peerId === from) {
          const what = this.direct.state === 'delivering' ? 'direct path broke' : 'direct connection failed';
          this.closeDirect(`the other side closed the direct path: ${signal.reason}`, false);
          this.directFailed(`${what}: ${signal.reason}`);
        }
        break;
    }
  }

  /**
   * @param {DirectLink} link
   * @param {{state: string, reason?: string}} d
   */
  onDirectState(link, d) {
    if (link !== this.direct) return;
    if (d.state === 'delivering') {
      this.directFailures = 0;
      this.lastDirectFailure = '';
      this.quietRelay();
      if (!this.forced || this.forced === 'direct') {
        this.switchPath('direct', this.mode === 'direct' ? 'direct connection established' : 'the direct path delivers media');
      }
    } else if (d.state === 'failed' || d.state === 'broken') {
      const what = d.state === 'failed' ? 'direct connection failed' : 'direct path broke';
      this.closeDirect(d.reason || what, true);
      this.directFailed(`${what}: ${d.reason || 'unknown'}`);
    }
  }

  /**
   * The direct connection failed or broke (here or on the other side): a direct call
   * says so and offers the relay; an automatic one carries on relayed.
   * @param {string} reason
   */
  directFailed(reason) {
    this.lastDirectFailure = reason;
    if (this.mode === 'direct' && !this.relay) {
      this.path = null;
      this.setState('failed', reason, undefined, true);
    } else {
      if (this.path !== 'relay' || this.pathReason !== reason) this.switchPath('relay', reason);
      if (this.mode === 'auto') this.scheduleDirectRetry();
    }
  }

  /**
   * @param {string} reason
   * @param {boolean} tellPeer
   */
  closeDirect(reason, tellPeer) {
    const link = this.direct;
    if (!link) return;
    this.direct = null;
    link.close(tellPeer ? reason : undefined);
    for (const [id] of this.streams.direct) this.streams.direct.delete(id);
    // Nobody receives directly anymore: send everything on the relay.
    this.relay?.setSending(true);
    this.peerUsing = 'relay';
    if (this.path === 'direct' && this.relay) this.switchPath('relay', reason);
  }

  scheduleDirectRetry() {
    clearTimeout(this.directRetry);
    if (this.directFailures >= DIRECT_RETRY_MS.length) return;
    const delay = DIRECT_RETRY_MS[this.directFailures];
    this.directFailures += 1;
    this.directRetry = setTimeout(() => {
      this.directRetry = undefined;
      this.evaluateDirect();
    }, delay);
  }

  /** The user's way out of a failed direct call: carry it through the server. */
  switchToRelay() {
    this.relayChosen = true;
    clearTimeout(this.directRetry);
    this.closeDirect('switched to relay', true);
    this.startRelay();
    this.switchPath('relay', 'you switched the call to relay after the direct connection failed');
  }

  // ---- choosing the path ----------------------------------------------------------

  /**
   * The other side now receives on `path`: send our media there.
   * @param {PathName} path
   */
  onPeerUsing(path) {
    this.peerUsing = path;
    clearTimeout(this.relayQuiet);
    if (path === 'relay') {
      if (!this.relay) this.startRelay();
      this.relay?.setSending(true);
      if (this.forced === 'relay') this.direct?.setSending(false);
      // In a direct room, the other side moving to the relay brings us along.
      if (this.mode === 'direct' && this.path !== 'relay' && this.direct?.state !== 'delivering') {
        this.relayChosen = true;
        this.closeDirect('the other participant switched the call to relay', false);
        this.switchPath('relay', 'the other participant switched the call to relay');
      }
    } else {
      this.direct?.setSending(true);
      this.quietRelay();
    }
  }

  /**
   * Stops sending on the relay once the other side receives directly (after a grace
   * period, so nothing is lost while it switches), unless viewers watch through it.
   */
  quietRelay() {
    clearTimeout(this.relayQuiet);
    if (this.peerUsing !== 'direct') return;
    this.relayQuiet = setTimeout(() => {
      if (this.peerUsing === 'direct' && this.direct?.state === 'delivering' && this.viewers === 0) {
        this.relay?.setSending(false);
      }
    }, RELAY_GRACE_MS);
  }

  /**
   * Receive on `path` now (used by comparison runs), connecting it first if needed.
   * @param {PathName} path
   * @param {string} reason
   */
  receiveOn(path, reason) {
    if (path === 'direct') {
      if (this.direct?.state === 'delivering') this.switchPath('direct', reason);
      else if (!this.direct && this.onlyPeer !== null && this.id > this.onlyPeer) this.startDirect(this.onlyPeer);
    } else {
      if (!this.relay) this.startRelay();
      this.direct?.setSending(true);
      this.switchPath('relay', reason);
    }
  }

  /** Picks the path by the usual rules again (after a comparison run). */
  settlePath(reason) {
    if (this.direct?.state === 'delivering') this.switchPath('direct', reason);
    else if (this.relay) this.switchPath('relay', reason);
  }

  /**
   * @param {PathName} path
   * @param {string} reason
   */
  switchPath(path, reason) {
    if (path === 'relay' && !this.relay) this.startRelay();
    const changed = this.path !== path;
    this.path = path;
    this.pathReason = reason;
    if (changed) {
      this.pathLog.push({ at: Date.now(), path, reason });
      this.emit('path', { path, reason });
    }
    if (!this.connectMs) this.connectMs = Math.round(performance.now() - this.startedAt);
    this.announce();
    this.setState('connected', reason, path);
  }

  /** Tells the server and the other side which path we receive on. */
  announce() {
    if (!this.path) return;
    this.sig?.send({ type: 'path', path: this.path, reason: this.pathReason });
    const peer = this.onlyPeer;
    if (peer !== null && (this.direct || this.mode !== 'relay')) {
      this.sig?.send({ type: 'direct', to: peer, signal: { kind: 'using', path: this.path } });
    }
  }

  // ---- comparison --------------------------------------------------------------------

  /**
   * Runs the call on each path in turn for `seconds` and returns a report of what was
   * measured on each (see stats.js). Needs exactly two participants.
   * @param {number} seconds
   * @param {PathName[]} [order]
   * @param {(msg: string) => void} [progress]
   */
  async runComparison(seconds, order = ['relay', 'direct'], progress = () => {}) {
    const peer = this.onlyPeer;
    if (peer === null) throw new Error('a comparison needs exactly two participants');
    const windows = [];
    const warmup = 2000;
    const startedAt = Date.now();
    try {
      for (const path of order) {
        progress(`switching to ${path}`);
        this.forced = path;
        this.sig?.send({ type: 'direct', to: peer, signal: { kind: 'force', path } });
        this.receiveOn(path, `comparison run: ${path}`);
        const ready = await this.waitFor(() => (path === 'relay' ? this.relay?.state === 'delivering' || this.relay?.state === 'connected' : this.direct?.state === 'delivering'), this.directTimeoutMs + 2000);
        if (!ready) {
          windows.push({ path, error: path === 'direct' ? this.lastDirectFailure || 'the direct path did not deliver media' : 'the relay did not connect' });
          continue;
        }
        this.switchPath(path, `comparison run: ${path}`);
        await sleep(warmup);
        const from = Date.now();
        for (let left = seconds; left > 0; left--) {
          progress(`measuring ${path}: ${left} s left`);
          await sleep(1000);
        }
        windows.push({ path, from, to: Date.now() });
      }
    } finally {
      this.forced = null;
      this.sig?.send({ type: 'direct', to: peer, signal: { kind: 'force' } });
      this.settlePath('comparison run finished');
      if (!this.direct && this.mode === 'auto') this.evaluateDirect();
    }
    progress('done');
    return buildReport(this, { startedAt, seconds, order, warmupMs: warmup, windows });
  }

  /**
   * @param {() => boolean | undefined} cond
   * @param {number} ms
   */
  async waitFor(cond, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (cond()) return true;
      await sleep(200);
    }
    return !!cond();
  }

  // ---- simulcast -------------------------------------------------------------------------

  /**
   * Tells the server the size participant `peerId`'s video is shown at (device pixels),
   * so it forwards no larger layer than useful.
   * @param {number} peerId
   * @param {number} width
   * @param {number} height
   */
  sendRender(peerId, width, height) {
    this.sig?.send({ type: 'render', peer: peerId, width: Math.round(width), height: Math.round(height) });
  }

  /** @param {'auto'|'high'|'low'} quality */
  setQuality(quality) {
    this.quality = quality;
    this.sig?.send({ type: 'quality', quality });
  }

  // ---- devices, leaving ----------------------------------------------------------------

  /** @param {string} reason */
  retry(reason) {
    if (this.ended) return;
    this.retries += 1;
    if (this.retries > MAX_RETRIES) {
      this.fail(`${reason}; gave up after ${MAX_RETRIES} attempts`);
      return;
    }
    this.setState('reconnecting', reason);
    this.teardown();
    const delay = Math.min(8000, 500 * 2 ** (this.retries - 1));
    setTimeout(() => {
      if (!this.ended) this.connect();
    }, delay);
  }

  /** @param {string} reason */
  fail(reason) {
    this.ended = true;
    this.teardown();
    this.setState('failed', reason);
  }

  /** @param {boolean} on */
  setMic(on) {
    this.micOn = on;
    this.localStream?.getAudioTracks().forEach((t) => (t.enabled = on));
    this.sendMediaState();
  }

  /** @param {boolean} on */
  setCamera(on) {
    this.camOn = on;
    this.localStream?.getVideoTracks().forEach((t) => (t.enabled = on));
    this.sendMediaState();
  }

  sendMediaState() {
    const hasAudio = !!this.localStream?.getAudioTracks().length;
    const hasVideo = !!this.localStream?.getVideoTracks().length;
    this.sig?.send({ type: 'media', audio: this.micOn && hasAudio, video: this.camOn && hasVideo });
  }

  hangup() {
    this.sig?.send({ type: 'leave' });
    this.ended = true;
    this.teardown();
    this.collector.stop();
    this.localStream?.getTracks().forEach((t) => t.stop());
    this.setState('ended');
  }

  teardown() {
    clearTimeout(this.iceTimer);
    clearTimeout(this.directRetry);
    clearTimeout(this.relayQuiet);
    this.directRetry = undefined;
    this.direct?.close();
    this.direct = null;
    this.relay?.close();
    this.relay = null;
    if (this.sig) {
      const sig = this.sig;
      this.sig = null;
      sig.close();
    }
    this.path = null;
    this.peerUsing = undefined;
    this.streams.relay.clear();
    this.streams.direct.clear();
    this.peers.clear();
    this.emit('peers', { peers: this.peers });
  }

  /**
   * @param {string} state
   * @param {string} [reason]
   * @param {string} [path]
   * @param {boolean} [canRelay]
   */
  setState(state, reason, path, canRelay) {
    this.state = state;
    this.emit('state', { state, reason, path, canRelay });
  }

  /**
   * @param {string} type
   * @param {any} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Camera and microphone, falling back to what the device has (or nothing). */
async function getLocalMedia() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  const attempts = [
    { audio: true, video },
    { audio: true, video: false },
    { audio: false, video },
  ];
  for (const c of attempts) {
    try {
      return await navigator.mediaDevices.getUserMedia(c);
    } catch (e) {
      console.warn('getUserMedia failed', c, e);
    }
  }
  return null;
}
