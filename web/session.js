// @ts-check
/**
 * One call: local media, the signaling connection, and the media paths, with the
 * timers that go with them. It emits events for the UI and never touches the DOM.
 *
 * The decisions (which path to receive on in each mode: relay, direct or auto; when
 * to start, give up and retry the direct connection; when to quiet the relay) are
 * policy.js's: this module gathers the facts, asks it, and carries out the answer.
 * The mode is chosen by whoever opens the room; joiners follow. In a direct call that
 * cannot connect, `switchToRelay()` moves the call to the server. Comparison runs
 * live in comparison.js.
 *
 * Each side chooses the path it *receives* on and tells the other (`using`), which
 * then sends there; that is how a switch happens without dropping the call.
 *
 * A network change (a phone moving between Wi-Fi and mobile data, a new address, a
 * screen unlocked) does not rebuild the call: the signaling connection is resumed on
 * a new WebSocket (`resume` with the token of `joined`: same participant, the others
 * see nothing) and ICE restarts on the same relay connection. Only if that does not
 * work within policy.RESTART_ICE_MS / RESUME_WINDOW_MS is the call rebuilt.
 *
 * Events (CustomEvent detail):
 * - `state`   {state: 'connecting'|'connected'|'reconnecting'|'failed'|'ended', reason?, path?, canRelay?}
 * - `path`    {path: 'relay'|'direct', reason}     the path media is received on changed
 * - `peers`   {peers: Map<number, PeerInfo>}
 * - `stream`  {peerId, stream, path}              media of a participant arrived on a path
 * - `stats`   {relay?, direct?, server?}          once a second, see stats.js
 * - `joined`  {id, room, mode}
 * - `serverError` {code, message}              an `error` from the server, before it is acted on
 * - `speaker` {id: number|null}                  the room's active speaker (this.id: you)
 * - `room`    {host: number|null, locked: boolean} who hosts the room, and its lock
 * - `held`    {audio, video, by}                   what the host stopped this page sending
 * - `screen`  {peerId, stream|null}               a participant's screen share arrived (relay) or ended
 * - `localScreen` {stream|null}                   this page's own share started or stopped
 * - `screenRefused` {code, message}               the server refused or stopped this page's share
 */
import { Signaling, defaultUrl } from './signaling.js';
import { RelayLink, DirectLink, DIRECT_TIMEOUT_MS } from './links.js';
import { StatsCollector } from './stats.js';
import * as policy from './policy.js';
import { DirectSpeaking } from './speaking.js';
import { SERVER_MSG_HANDLERS } from './handlers.js';

/** @typedef {import('./signaling.js').PeerInfo} PeerInfo */
/** @typedef {import('./signaling.js').ServerMsg} ServerMsg */
/** @typedef {import('./policy.js').PathName} PathName */

export class CallSession extends EventTarget {
  /**
   * @param {{room: string, name: string, url?: string, videoCodec?: string,
   *          mode?: string, directTimeoutMs?: number, role?: string, simulcast?: boolean,
   *          screenSimulcast?: boolean, token?: string, hostToken?: string}} opts
   */
  constructor(opts) {
    super();
    /** 'participant', or 'viewer' (receives only, relayed). */
    this.role = opts.role === 'viewer' ? 'viewer' : 'participant';
    /** Send video to the server in three layers. */
    this.simulcast = opts.simulcast !== false;
    /**
     * Send a screen share in three layers too; by default it goes in one layer with
     * the content hint `detail`, which keeps small text sharp (docs/benchmarks.md).
     */
    this.screenSimulcast = !!opts.screenSimulcast;
    /** This page's screen share, while it shares. */
    /** @type {MediaStreamTrack | null} */
    this.screenTrack = null;
    /** Participants' screen shares received through the server, by participant. */
    /** @type {Map<number, MediaStream>} */
    this.screens = new Map();
    /** The room's token, for rooms that need one. */
    this.token = opts.token || '';
    /** The room's or the operator's token: joins as the room's host (`?host=`). */
    this.hostToken = opts.hostToken || '';
    /** Who hosts the room (null: nobody yet), and whether it is locked. */
    /** @type {number | null} */
    this.hostId = null;
    this.locked = false;
    /** The host lets several participants share a screen at once. */
    this.manyShares = false;
    /** What the host holds of this page's media (true: may not turn it on). */
    this.held = { audio: false, video: false, by: 0 };
    /** Participants this page, as host, muted and has not allowed back yet. */
    /** @type {Set<number>} */
    this.heldPeers = new Set();
    /** How many viewers watch the room. */
    this.viewers = 0;
    /** The room's active speaker, as the server hears it (null: nobody speaks). */
    /** @type {number | null} */
    this.speaker = null;
    /** The active speaker the server last announced (it hears only relayed media). */
    /** @type {number | null} */
    this.serverSpeaker = null;
    /** The page's own speaker detection, while media arrives on the direct path. */
    this.directSpeaking = new DirectSpeaking(this);
    /** The room is being recorded (the server says so from the first moment to the last). */
    this.recording = false;
    /** @type {string | null} Why the last recording stopped by itself. */
    this.recordingMessage = null;
    /** @type {string | null} The host's key to the room's recordings (`recordingAccess`). */
    this.recordingKey = null;
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
    this.requestedMode = policy.requestedMode(opts.mode, this.role);
    /** @type {string} */
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
    /** @type {PathName | undefined} the path the other side receives on (we send there) */
    this.peerUsing = undefined;
    this.connectMs = 0;
    this.startedAt = 0;
    /** The server's latest measurements of our relayed legs. */
    this.serverStats = null;
    this.collector = new StatsCollector(this);
    /** The token that resumes this participant on a new signaling connection. */
    this.resumeToken = '';
    /**
     * In a cluster: the other nodes' URLs (from `joined`), where the page goes if
     * this one stops answering.
     * @type {string[]}
     */
    this.nodes = [];
    /** A resume is under way. */
    this.resuming = false;
    /** The server refused the resume under way (it no longer has this participant). */
    this.resumeRefused = false;
    /** The relay connection needs an ICE restart once signaling is resumed. */
    this.relayRestart = false;
    /** Settles the resume under way: true when `joined` came, false when refused. */
    /** @type {((resumed: boolean) => void) | null} */
    this.resumeWaiter = null;
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

  /**
   * The facts the path policy decides on, as they are now.
   * @returns {policy.Facts}
   */
  facts() {
    const d = this.direct;
    return {
      mode: this.mode, role: this.role, id: this.id, peerCount: this.peers.size, onlyPeer: this.onlyPeer,
      relayChosen: this.relayChosen, hasRelay: !!this.relay, path: this.path, pathReason: this.pathReason,
      direct: d && { peerId: d.peerId, state: d.state, initiator: d.initiator },
      retryPending: !!this.directRetry, forced: this.forced, peerUsing: this.peerUsing, viewers: this.viewers,
      recording: this.recording,
    };
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
    sig.addEventListener('close', () => this.onSignalingLost(sig));
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
      ...(this.hostToken ? { hostToken: this.hostToken } : {}),
    });
  }

  /**
   * The signaling connection closed (not by us): resume the participant on a new one,
   * or join again when there is nothing to resume.
   * @param {Signaling} sig
   */
  onSignalingLost(sig) {
    if (this.sig !== sig || this.ended) return;
    if (this.resuming) {
      // The connection of a resume under way: that attempt failed.
      this.resumeWaiter?.(false);
      return;
    }
    if (this.resumeToken) this.resumeSignaling('lost the connection to the server');
    else this.retry('lost the connection to the server');
  }

  /**
   * The network may have changed (the browser came back `online`, the screen was
   * unlocked, the media path to the server was interrupted): unless the relay
   * connection is fine, resume signaling on a new connection and restart ICE.
   * @param {string} [reason]
   */
  networkChanged(reason = policy.NETWORK_CHANGED) {
    if (this.ended || !this.sig || !this.id) return;
    if (this.relay && this.relay.pc.connectionState === 'connected' && this.sig.ws?.readyState === WebSocket.OPEN) return;
    if (this.relay) this.restartRelay(this.relay, { reason, ms: policy.RESTART_ICE_MS, lost: 'media path to the server lost', quiet: false });
    else this.resumeSignaling(reason);
  }

  /**
   * Recovers the relay connection in place: resume signaling on a new WebSocket (the
   * old one may have died with the network without noticing, and an ICE restart
   * offer needs a live one), then restart ICE; rebuild the call if it is still down
   * after `ms`.
   * @param {RelayLink} link
   * @param {{reason: string, ms: number, lost: string, quiet: boolean}} next
   */
  restartRelay(link, next) {
    if (!next.quiet) this.setState('reconnecting', next.reason);
    this.relayRestart = true;
    clearTimeout(this.iceTimer);
    const pc = link.pc;
    this.iceTimer = setTimeout(() => {
      if (this.relay === link && pc.connectionState !== 'connected') this.retry(next.lost);
    }, next.ms);
    if (this.resumeToken) this.resumeSignaling(next.reason, next.quiet);
    else {
      this.relayRestart = false;
      link.recover(true);
    }
  }

  /**
   * Takes this participant over on a new signaling connection (`resume`), trying
   * again with a backoff within policy.RESUME_WINDOW_MS; the fresh `joined` that
   * answers it ends the resume (`onResumed`). Refused, or out of time: join again.
   * @param {string} reason
   * @param {boolean} [quiet] say nothing (receiving directly, only the relay is mended)
   */
  async resumeSignaling(reason, quiet = false) {
    const sig = this.sig;
    if (this.resuming || this.ended || !sig) return;
    this.resuming = true;
    if (!quiet) this.setState('reconnecting', reason);
    const started = performance.now();
    let refused = false;
    for (let attempt = 1; !this.ended && this.sig === sig; attempt++) {
      /** @type {Promise<boolean>} */
      const answered = new Promise((resolve) => {
        this.resumeWaiter = resolve;
        setTimeout(() => resolve(false), policy.RECONNECT_MAX_MS * 2);
      });
      try {
        await sig.reopen();
        sig.send({ type: 'resume', token: this.resumeToken });
        if (await answered) {
          this.resumeWaiter = null;
          this.resuming = false;
          return;
        }
      } catch {
        // Cannot reach the server (yet): try again. In a cluster, after a second
        // miss the page moves to another node (this one may be gone for good), which
        // places it again.
        if (attempt >= 2 && this.nodes.length) {
          this.resumeWaiter = null;
          this.resuming = false;
          const url = this.nodes[Math.floor(Math.random() * this.nodes.length)];
          SERVER_MSG_HANDLERS.redirect.call(this, { type: 'redirect', url });
          return;
        }
      }
      this.resumeWaiter = null;
      if (this.resumeRefused) {
        refused = true;
        break;
      }
      const delay = policy.resumeDelay(attempt, performance.now() - started);
      if (delay === null) break;
      await new Promise((r) => setTimeout(r, delay));
    }
    this.resuming = false;
    this.resumeRefused = false;
    if (this.ended || this.sig !== sig) return;
    this.resumeToken = '';
    this.retry(refused ? 'the server no longer had this call' : reason);
  }

  /**
   * The fresh `joined` of a resumed participant: the room as it is now (who left or
   * came meanwhile), our state told again, and the relay connection recovered.
   * @param {Extract<ServerMsg, {type: 'joined'}>} msg
   */
  onResumed(msg) {
    this.resumeToken = msg.resume || '';
    this.nodes = msg.nodes || [];
    this.sig?.closeStale();
    const before = this.peers;
    this.peers = new Map(msg.peers.map((p) => [p.id, p]));
    for (const id of before.keys()) {
      if (this.peers.has(id)) continue;
      this.streams.relay.delete(id);
      this.relay?.forget(id);
      this.streams.direct.delete(id);
      if (this.direct?.peerId === id) this.closeDirect('the other participant left', false);
    }
    this.emit('peers', { peers: this.peers });
    const waiter = this.resumeWaiter;
    this.resumeWaiter = null;
    waiter?.(true);
    if (this.quality !== 'auto') this.sig?.send({ type: 'quality', quality: /** @type {any} */ (this.quality) });
    this.sendMediaState();
    this.announce();
    if (this.relay) {
      const restart = this.relayRestart;
      this.relay.recover(restart);
      this.relayRestart = false;
      // Not restarting ICE: only the signaling connection had dropped.
      if (!restart && this.relay.pc.connectionState === 'connected' && this.path) this.setState('connected', this.pathReason, this.path);
    } else {
      const next = policy.onJoined(this.facts());
      if (next.startRelay) this.startRelay();
    }
    this.evaluateDirect();
  }

  /**
   * A message from the server, handed to its handler (SERVER_MSG_HANDLERS, handlers.js).
   * @param {ServerMsg} msg
   */
  onMessage(msg) {
    if (!Object.hasOwn(SERVER_MSG_HANDLERS, msg.type)) return;
    const handle = /** @type {(this: CallSession, msg: ServerMsg) => void} */ (SERVER_MSG_HANDLERS[msg.type]);
    handle.call(this, msg);
  }

  /**
   * @param {string} code
   * @param {string} message
   */
  onError(code, message) {
    console.warn('server error', code, message);
    this.emit('serverError', { code, message });
    if (code === 'resumeRefused' && this.resuming) {
      this.resumeRefused = true;
      this.resumeWaiter?.(false);
      return;
    }
    // The server refused to turn on what the host holds: keep it off here too.
    if (code === 'heldByHost') this.applyHeld();
    switch (policy.onServerError(this.facts(), code)) {
      case 'fail':
        this.fail(message);
        break;
      case 'dropRelay':
        this.relay?.close();
        this.relay = null;
        break;
      case 'reconnect':
        this.retry(message);
        break;
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
    link.addEventListener('screen', (ev) => {
      const { peerId, stream } = /** @type {CustomEvent} */ (ev).detail;
      if (stream) this.screens.set(peerId, stream);
      else this.screens.delete(peerId);
      this.emit('screen', { peerId, stream });
    });
    link.addEventListener('state', (ev) => this.onRelayState(link, /** @type {CustomEvent} */ (ev).detail));
    link.addEventListener('silent', (ev) => this.onRelaySilent(link, /** @type {CustomEvent} */ (ev).detail.silent));
    // Someone already receiving directly from us needs nothing on the relay.
    if (!policy.relaySendsAtStart(this.facts())) link.setSending(false);
  }

  /**
   * @param {RelayLink} link
   * @param {{state: string, reason?: string}} d
   */
  onRelayState(link, d) {
    if (link !== this.relay) return;
    const restarted = d.state === 'connected' && this.state === 'reconnecting' && !!this.path;
    if (d.state === 'connected') {
      clearTimeout(this.iceTimer);
      this.retries = 0;
    }
    const next = policy.onRelayState(this.facts(), d.state, d.reason);
    switch (next.do) {
      case 'receive':
        this.switchPath('relay', next.reason);
        break;
      case 'announce':
        this.announce();
        // Back after an ICE restart: the same call goes on.
        if (restarted && this.path) this.setState('connected', `reconnected after the ${policy.NETWORK_CHANGED}`, this.path);
        break;
      case 'restart':
        this.restartRelay(link, next);
        break;
      case 'reconnect':
        this.retry(next.reason);
        break;
    }
  }

  /**
   * The relay connection heard nothing at all for a moment (it went silent), or hears
   * again. Silence is how a new network shows first: recover now rather than wait
   * the seconds until ICE calls the connection disconnected.
   * @param {RelayLink} link
   * @param {boolean} silent
   */
  onRelaySilent(link, silent) {
    if (link !== this.relay) return;
    if (!silent) {
      if (this.state === 'reconnecting' && this.path && !this.resuming && link.pc.connectionState === 'connected') {
        clearTimeout(this.iceTimer);
        this.setState('connected', `reconnected after the ${policy.NETWORK_CHANGED}`, this.path);
      }
      return;
    }
    const next = policy.onRelaySilent(this.facts());
    if (next.do === 'restart') this.restartRelay(link, next);
  }

  // ---- direct path --------------------------------------------------------------

  /** Starts or stops the direct connection as the room and mode require. */
  evaluateDirect() {
    const plan = policy.directPlan(this.facts());
    if (plan.do === 'stop') {
      if (this.direct) this.closeDirect(plan.reason, true);
      if (policy.groupNeedsRelay(this.facts())) this.switchPath('relay', plan.reason);
    } else if (plan.do === 'start') {
      this.startDirect(plan.peerId);
    }
  }

  /** @param {number} peerId */
  startDirect(peerId) {
    if (!this.sig) return null;
    this.direct?.close();
    const link = new DirectLink(this.sig, peerId, policy.initiates(this.id, peerId), this.localStream, this.videoCodec, this.directTimeoutMs);
    this.direct = link;
    this.peerUsing = policy.peerPathAtDirectStart(this.facts());
    link.addEventListener('stream', (ev) => {
      const { stream } = /** @type {CustomEvent} */ (ev).detail;
      this.streams.direct.set(peerId, stream);
      this.emit('stream', { peerId, stream, path: 'direct' });
    });
    link.addEventListener('state', (ev) => this.onDirectState(link, /** @type {CustomEvent} */ (ev).detail));
    link.addEventListener('stall', (ev) => {
      // Receiving on the direct path and nothing arrives: fall back now rather than
      // wait for ICE to notice.
      const { ms } = /** @type {CustomEvent} */ (ev).detail;
      const stall = policy.onDirectStall(this.facts(), link === this.direct, ms);
      if (!stall) return;
      this.closeDirect(stall.close, true);
      this.directFailed(stall.failure);
    });
    return link;
  }

  /**
   * @param {number} from
   * @param {any} signal
   */
  onDirectSignal(from, signal) {
    switch (signal.kind) {
      case 'offer': {
        const answer = policy.onDirectOffer(this.facts(), from);
        if (answer.refuse !== null) {
          this.sig?.send({ type: 'direct', to: from, signal: { kind: 'bye', reason: answer.refuse } });
          return;
        }
        clearTimeout(this.directRetry);
        this.directRetry = undefined;
        if (answer.newLink) this.startDirect(from);
        this.direct?.onSignal(signal);
        break;
      }
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
          const bye = policy.peerClosedDirect(this.direct.state, signal.reason);
          this.closeDirect(bye.close, false);
          this.directFailed(bye.failure);
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
      // It works: the retry backoff starts over next time it fails.
      this.directFailures = 0;
      this.lastDirectFailure = '';
      this.quietRelay();
      const take = policy.onDirectDelivering(this.facts());
      if (take) this.switchPath(take.path, take.reason);
    } else if (d.state === 'failed' || d.state === 'broken') {
      const trouble = policy.directLinkTrouble(d.state, d.reason);
      this.closeDirect(trouble.close, true);
      this.directFailed(trouble.failure);
    }
  }

  /**
   * The direct connection failed or broke (here or on the other side): a direct call
   * says so and offers the relay; an automatic one carries on relayed.
   * @param {string} reason
   */
  directFailed(reason) {
    this.lastDirectFailure = reason;
    const next = policy.afterDirectFailure(this.facts(), reason);
    if (next.fail) {
      this.path = null;
      this.followSpeakerSource();
      this.setState('failed', next.reason, undefined, next.canRelay);
    } else {
      if (next.toRelay) this.switchPath('relay', next.reason);
      if (next.retryDirect) this.scheduleDirectRetry();
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
    if (policy.relayAfterDirectClosed(this.facts())) this.switchPath('relay', reason);
  }

  scheduleDirectRetry() {
    clearTimeout(this.directRetry);
    const delay = policy.directRetryDelay(this.directFailures);
    if (delay === null) return;
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
    const next = policy.onPeerUsing(this.facts(), path);
    if (next.sendOn === 'relay') {
      if (!this.relay) this.startRelay();
      this.relay?.setSending(true);
      if (next.stopDirect) this.direct?.setSending(false);
      // In a direct room, the other side moving to the relay brings us along.
      if (next.follow) {
        this.relayChosen = true;
        this.closeDirect(next.follow, false);
        this.switchPath('relay', next.follow);
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
    if (!policy.shouldQuietRelay(this.facts())) return;
    this.relayQuiet = setTimeout(() => {
      if (policy.relayQuietNow(this.facts())) this.relay?.setSending(false);
    }, policy.RELAY_GRACE_MS);
  }

  /**
   * Receive on `path` now (used by comparison runs), connecting it first if needed.
   * @param {PathName} path
   * @param {string} reason
   */
  receiveOn(path, reason) {
    const next = policy.onForced(this.facts(), path);
    if (path === 'direct') {
      if (next.do === 'receive') this.switchPath('direct', reason);
      else if (next.do === 'start') this.startDirect(next.peerId);
    } else {
      if (!this.relay) this.startRelay();
      this.direct?.setSending(true);
      this.switchPath('relay', reason);
    }
  }

  /**
   * Picks the path by the usual rules again (after a comparison run).
   * @param {string} reason
   */
  settlePath(reason) {
    const path = policy.settledPath(this.facts());
    if (path) this.switchPath(path, reason);
  }

  /**
   * Pins `path` on both sides of the call (comparison runs, see comparison.js): the
   * other participant `peer` is told to receive on it too.
   * @param {number} peer
   * @param {PathName} path
   * @param {string} reason
   */
  forcePath(peer, path, reason) {
    this.forced = path;
    this.sig?.send({ type: 'direct', to: peer, signal: { kind: 'force', path } });
    this.receiveOn(path, reason);
  }

  /**
   * Gives the server a comparison report to keep as the room's latest (read with
   * `GET /api/rooms/ROOM/comparison`).
   * @param {any} report
   */
  shareComparison(report) {
    this.sig?.send({ type: 'comparison', report });
  }

  /**
   * Ends a pin of `forcePath`: both sides choose their path by the usual rules again.
   * @param {number} peer
   * @param {string} reason
   */
  releasePath(peer, reason) {
    this.forced = null;
    this.sig?.send({ type: 'direct', to: peer, signal: { kind: 'force' } });
    this.settlePath(reason);
    if (policy.reconsiderDirectAfterRun(this.facts())) this.evaluateDirect();
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
    if (changed) this.followSpeakerSource();
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
    if (peer !== null && policy.tellPeerPath(this.facts())) {
      this.sig?.send({ type: 'direct', to: peer, signal: { kind: 'using', path: this.path } });
    }
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

  /**
   * Sends a chat message to everyone in the room; the server echoes it back as a
   * `chat` event (or says why not, `chatRefused`). Returns whether it was sent: not
   * while the page has no signaling connection (it is reconnecting).
   * @param {string} text
   * @returns {boolean}
   */
  sendChat(text) {
    return this.sig?.send({ type: 'chat', text }) ?? false;
  }

  // ---- screen sharing ----------------------------------------------------------------

  /** Whether this browser can share a screen (phones mostly cannot). */
  static canShareScreen() {
    return typeof navigator !== 'undefined' && typeof navigator.mediaDevices?.getDisplayMedia === 'function';
  }

  /**
   * Asks the browser for a screen, window or tab and sends it through the server as
   * a second video track (the camera goes on). The browser's own "Stop sharing"
   * ends it like `stopScreen`. Rejects when the person cancels the picker.
   */
  async shareScreen() {
    if (this.screenTrack || this.role === 'viewer') return;
    if (!this.relay) this.startRelay();
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 30 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    if (track) this.shareTrack(track);
  }

  /**
   * Sends `track` as this page's screen share (what `shareScreen` captured; a
   * benchmark gives a canvas's track).
   * @param {MediaStreamTrack} track
   */
  shareTrack(track) {
    if (this.screenTrack || this.role === 'viewer') return;
    if (!this.relay) this.startRelay();
    if (!this.screenSimulcast) track.contentHint = 'detail';
    this.screenTrack = track;
    // The browser's "Stop sharing" bar (or the shared window closing) ends the track.
    track.addEventListener('ended', () => this.stopScreen());
    this.relay?.startScreen(track, this.screenSimulcast);
    this.emit('localScreen', { stream: new MediaStream([track]) });
  }

  /** Stops this page's screen share, if it shares. */
  stopScreen() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    this.relay?.stopScreen();
    this.emit('localScreen', { stream: null });
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
    const delay = policy.reconnectDelay(this.retries);
    if (delay === null) {
      this.fail(`${reason}; gave up after ${policy.MAX_RETRIES} attempts`);
      return;
    }
    this.setState('reconnecting', reason);
    this.teardown();
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

  /** Whether this page is the room's host. */
  get isHost() {
    return this.id !== 0 && this.hostId === this.id;
  }

  /**
   * As the room's host: `action` on participant `peer` (none for lock and unlock). The
   * server checks it; the page only offers it to the host.
   * @param {import('./signaling.js').HostAction} action
   * @param {number} [peer]
   */
  hostAction(action, peer) {
    if (peer !== undefined) {
      if (action === 'mute') this.heldPeers.add(peer);
      if (action === 'allowUnmute' || action === 'remove') this.heldPeers.delete(peer);
    }
    this.sig?.send({ type: 'host', action, ...(peer === undefined ? {} : { peer }) });
  }

  /** What the host holds goes off here (never on: only the participant turns it on). */
  applyHeld() {
    if (this.held.audio && this.micOn) this.setMic(false);
    if (this.held.video && this.camOn) this.setCamera(false);
  }

  /** @param {boolean} on */
  setMic(on) {
    if (on && this.held.audio) {
      this.emit('held', { ...this.held, refused: true });
      return;
    }
    this.micOn = on;
    this.localStream?.getAudioTracks().forEach((t) => (t.enabled = on));
    this.sendMediaState();
  }

  /** @param {boolean} on */
  setCamera(on) {
    if (on && this.held.video) {
      this.emit('held', { ...this.held, refused: true });
      return;
    }
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
    // A share lives on the relay connection: it ends with it.
    if (this.screenTrack) {
      this.screenTrack.stop();
      this.screenTrack = null;
      this.emit('localScreen', { stream: null });
    }
    for (const peerId of [...this.screens.keys()]) {
      this.screens.delete(peerId);
      this.emit('screen', { peerId, stream: null });
    }
    this.resumeToken = '';
    this.resumeWaiter?.(false);
    this.resumeWaiter = null;
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
    this.serverSpeaker = null;
    this.followSpeakerSource();
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
   * Who decides the active speaker: the page itself on the direct path (the server
   * hears none of it), the server otherwise.
   */
  followSpeakerSource() {
    if (this.path === 'direct' && !this.ended) {
      this.directSpeaking.start();
    } else {
      this.directSpeaking.stop();
      this.setSpeaker(this.serverSpeaker);
    }
  }

  /** @param {number | null} id the room's active speaker (null: nobody) */
  setSpeaker(id) {
    if (this.speaker === id) return;
    this.speaker = id;
    this.emit('speaker', { id });
  }

  /**
   * @param {string} type
   * @param {any} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
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
