// @ts-check
/**
 * One call: local media, the RTCPeerConnection to the server, and the negotiation
 * with it. Emits events for the UI and never touches the DOM.
 *
 * Events (CustomEvent detail):
 * - `state`   {state: 'connecting'|'connected'|'reconnecting'|'failed'|'ended', reason?: string, path?: string}
 * - `peers`   {peers: Map<number, PeerInfo>}          the others in the room changed
 * - `stream`  {peerId: number, stream: MediaStream}    media of a participant arrived
 * - `joined`  {id: number, room: string}
 *
 * Negotiation: the browser offers first; afterwards the server offers whenever tracks
 * of others come or go. The server is "polite": if both offer at once, the browser
 * ignores the server's offer and the server re-offers after answering ours.
 */
import { Signaling, defaultUrl } from './signaling.js';

/** @typedef {import('./signaling.js').PeerInfo} PeerInfo */
/** @typedef {import('./signaling.js').ServerMsg} ServerMsg */

/** How long ICE may stay disconnected before the call is rebuilt. */
const ICE_GRACE_MS = 4000;
/** Reconnection attempts before giving up. */
const MAX_RETRIES = 5;

export class CallSession extends EventTarget {
  /**
   * @param {{room: string, name: string, url?: string, videoCodec?: string}} opts
   */
  constructor(opts) {
    super();
    /** Preferred video codec to send ('vp8', 'h264'); empty lets the browser choose. */
    this.videoCodec = (opts.videoCodec || '').toLowerCase();
    this.room = opts.room;
    this.name = opts.name;
    this.url = opts.url || defaultUrl();
    /** @type {MediaStream | null} */
    this.localStream = null;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {Signaling | null} */
    this.sig = null;
    /** @type {Map<number, PeerInfo>} */
    this.peers = new Map();
    /** @type {Map<number, MediaStream>} */
    this.streams = new Map();
    this.id = 0;
    this.micOn = true;
    this.camOn = true;
    this.state = 'idle';
    this.retries = 0;
    this.ended = false;
    /** @type {Promise<void>} negotiation steps run one after another */
    this.chain = Promise.resolve();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.iceTimer = undefined;
    /** Milliseconds from start() to the first connected state, for the UI and tests. */
    this.connectMs = 0;
    this.startedAt = 0;
  }

  /** Gets the camera and microphone, then joins. */
  async start() {
    this.startedAt = performance.now();
    this.setState('connecting');
    this.localStream = await getLocalMedia();
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
    sig.send({ type: 'join', room: this.room, name: this.name });
  }

  /** @param {ServerMsg} msg */
  onMessage(msg) {
    switch (msg.type) {
      case 'joined':
        this.id = msg.id;
        this.peers = new Map(msg.peers.map((p) => [p.id, p]));
        this.emit('joined', { id: msg.id, room: msg.room });
        this.emit('peers', { peers: this.peers });
        this.startPeerConnection();
        break;
      case 'peerJoined':
        this.peers.set(msg.peer.id, msg.peer);
        this.emit('peers', { peers: this.peers });
        break;
      case 'peerLeft':
        this.peers.delete(msg.id);
        this.streams.delete(msg.id);
        this.emit('peers', { peers: this.peers });
        break;
      case 'peerMedia': {
        const p = this.peers.get(msg.id);
        if (p) {
          p.audio = msg.audio;
          p.video = msg.video;
          this.emit('peers', { peers: this.peers });
        }
        break;
      }
      case 'answer':
        this.enqueue(async () => {
          if (!this.pc || this.pc.signalingState !== 'have-local-offer') return;
          await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        });
        break;
      case 'offer':
        this.enqueue(async () => {
          const pc = this.pc;
          // Our own offer is out: the server (polite) will re-offer after answering it.
          if (!pc || pc.signalingState !== 'stable') return;
          await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
          const answer = await pc.createAnswer();
          await pc.setLocalDescription(answer);
          this.sig?.send({ type: 'answer', sdp: answer.sdp || '' });
        });
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
    if (code === 'roomFull' || code === 'badName') {
      this.fail(message);
    } else if (code === 'mediaFailed') {
      this.retry(message);
    }
  }

  startPeerConnection() {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.pc = pc;
    const stream = this.localStream;
    const audio = stream?.getAudioTracks()[0] || null;
    const video = stream?.getVideoTracks()[0] || null;
    const streams = stream ? [stream] : [];
    // Both m-lines always exist so toggling devices never needs renegotiation.
    pc.addTransceiver(audio || 'audio', { direction: audio ? 'sendrecv' : 'recvonly', streams });
    const vt = pc.addTransceiver(video || 'video', { direction: video ? 'sendrecv' : 'recvonly', streams });
    if (this.videoCodec) preferCodec(vt, this.videoCodec);
    pc.onicecandidate = (ev) => {
      if (ev.candidate) {
        this.sig?.send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid });
      }
    };
    pc.ontrack = (ev) => {
      const s = ev.streams[0];
      if (!s) return;
      const peerId = Number(s.id);
      if (!Number.isFinite(peerId)) return;
      this.streams.set(peerId, s);
      this.emit('stream', { peerId, stream: s });
    };
    pc.onconnectionstatechange = () => this.onConnectionState();
    this.enqueue(async () => {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this.sig?.send({ type: 'offer', sdp: offer.sdp || '' });
    });
    this.sendMediaState();
  }

  onConnectionState() {
    const pc = this.pc;
    if (!pc) return;
    const s = pc.connectionState;
    if (s === 'connected') {
      clearTimeout(this.iceTimer);
      this.retries = 0;
      if (!this.connectMs) this.connectMs = Math.round(performance.now() - this.startedAt);
      this.setState('connected', undefined, 'relay');
    } else if (s === 'disconnected') {
      this.setState('reconnecting', 'media path interrupted');
      clearTimeout(this.iceTimer);
      this.iceTimer = setTimeout(() => {
        if (this.pc === pc && pc.connectionState !== 'connected') this.retry('media path lost');
      }, ICE_GRACE_MS);
    } else if (s === 'failed') {
      this.retry('media connection failed');
    }
  }

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
    this.localStream?.getTracks().forEach((t) => t.stop());
    this.setState('ended');
  }

  teardown() {
    clearTimeout(this.iceTimer);
    if (this.pc) {
      this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
    if (this.sig) {
      const sig = this.sig;
      this.sig = null;
      sig.close();
    }
    this.chain = Promise.resolve();
    this.streams.clear();
    this.peers.clear();
    this.emit('peers', { peers: this.peers });
  }

  /** @param {() => Promise<void>} step */
  enqueue(step) {
    this.chain = this.chain.then(step).catch((e) => {
      console.error('negotiation failed', e);
      this.retry('negotiation failed');
    });
  }

  /**
   * @param {string} state
   * @param {string} [reason]
   * @param {string} [path]
   */
  setState(state, reason, path) {
    this.state = state;
    this.emit('state', { state, reason, path });
  }

  /**
   * @param {string} type
   * @param {any} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
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
