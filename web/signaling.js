// @ts-check
/**
 * The signaling wire: a WebSocket carrying the JSON messages of
 * src/signaling/protocol.rs. This module knows the protocol and nothing of the DOM.
 */

/** @typedef {'participant'|'viewer'} Role */

/** @typedef {'mute'|'allowUnmute'|'stopVideo'|'stopScreen'|'remove'|'makeHost'|'lock'|'unlock'|'allowShares'|'oneShare'|'record'|'stopRecording'} HostAction */

/**
 * @typedef {{type: 'join', room: string, name: string, role?: Role, mode?: 'relay'|'direct'|'auto', token?: string, hostToken?: string}
 *   | {type: 'resume', token: string}
 *   | {type: 'offer', sdp: string}
 *   | {type: 'answer', sdp: string}
 *   | {type: 'candidate', candidate: string, sdpMid?: string | null}
 *   | {type: 'media', audio: boolean, video: boolean}
 *   | {type: 'direct', to: number, signal: any}
 *   | {type: 'path', path: 'relay'|'direct', reason: string}
 *   | {type: 'render', peer: number, width: number, height: number}
 *   | {type: 'quality', quality: 'auto'|'high'|'low'}
 *   | {type: 'comparison', report: any}
 *   | {type: 'chat', text: string}
 *   | {type: 'host', action: HostAction, peer?: number}
 *   | {type: 'screen', mid: string | null}
 *   | {type: 'leave'}} ClientMsg
 */

/** @typedef {{id: number, name: string, audio: boolean, video: boolean, path?: 'relay'|'direct'|null, screen?: boolean, codecGap?: {codec: string, switchable: boolean} | null}} PeerInfo */

/**
 * @typedef {{type: 'joined', id: number, room: string, peers: PeerInfo[], capacity: number, mode: 'relay'|'direct'|'auto', resume?: string, nodes?: string[]}
 *   | {type: 'peerJoined', peer: PeerInfo}
 *   | {type: 'peerLeft', id: number, reason: string}
 *   | {type: 'peerMedia', id: number, audio: boolean, video: boolean}
 *   | {type: 'speaker', id: number | null}
 *   | {type: 'room', host: number | null, locked: boolean, manyShares: boolean}
 *   | {type: 'held', audio: boolean, video: boolean, by: number}
 *   | {type: 'recording', on: boolean, message?: string}
 *   | {type: 'recordingAccess', key: string}
 *   | {type: 'peerScreen', id: number, screen: boolean}
 *   | {type: 'screenRefused', code: string, message: string}
 *   | {type: 'answer', sdp: string}
 *   | {type: 'offer', sdp: string, tracks?: MidOwner[]}
 *   | {type: 'peerCodec', id: number, codec: string, decodable: boolean, switchable?: boolean, message: string}
 *   | {type: 'sendCodec', codec: string, reason: string}
 *   | {type: 'peerPath', id: number, path: 'relay'|'direct', reason: string}
 *   | {type: 'direct', from: number, signal: any}
 *   | {type: 'stats', stats: any}
 *   | {type: 'layer', peer: number, rid: string, index: number, count: number, reason: string}
 *   | {type: 'viewers', count: number}
 *   | {type: 'error', code: string, message: string}
 *   | {type: 'chat', message: ChatLine}
 *   | {type: 'chatHistory', messages: ChatLine[], canWrite: boolean, maxLength: number}
 *   | {type: 'chatRefused', code: string, message: string}
 *   | {type: 'redirect', url: string}} ServerMsg
 */

/** @typedef {{id: number, from: number, name: string, role: Role, text: string, agoMs: number}} ChatLine */

/**
 * Whose track an m-line of the server's offer carries, and what it is.
 * @typedef {{mid: string, peer: number, source?: 'camera'|'microphone'|'screen'}} MidOwner
 */

/**
 * Every message type the client sends (ClientMsg in protocol.rs, serde's camelCase
 * names); tests/web/protocol.test.mjs holds this list, the typedef above and the
 * client's `send` calls to the Rust enum.
 */
export const CLIENT_MSG_TYPES = Object.freeze(['join', 'resume', 'offer', 'answer', 'candidate', 'media', 'direct', 'path', 'render', 'quality', 'comparison', 'chat', 'host', 'screen', 'leave']);

/**
 * Every message type the server sends (ServerMsg in protocol.rs). Others are dropped
 * here; session.js has a handler for each (the same test checks).
 */
export const SERVER_MSG_TYPES = Object.freeze(['joined', 'peerJoined', 'peerLeft', 'peerMedia', 'speaker', 'room', 'held', 'recording', 'recordingAccess', 'peerScreen', 'screenRefused', 'peerCodec', 'sendCodec', 'peerPath', 'direct', 'stats', 'layer', 'viewers', 'answer', 'offer', 'error', 'chat', 'chatHistory', 'chatRefused', 'redirect']);

/** Largest comparison report the server keeps (MAX_REPORT_BYTES in protocol.rs). */
export const MAX_REPORT_BYTES = 48 * 1024;

/**
 * Where the page goes when the server sends `redirect`: the same page (path, query,
 * fragment) on the node `url` names (`https://HOST:PORT`); `null` for anything else.
 * @param {string} url
 * @param {{pathname: string, search: string, hash: string}} here
 */
export function redirectTarget(url, here) {
  let base;
  try {
    base = new URL(url);
  } catch {
    return null;
  }
  if (base.protocol !== 'https:' || base.pathname !== '/' || base.search || base.hash) return null;
  return `${base.origin}${here.pathname}${here.search}${here.hash}`;
}

/**
 * Whether the node at `url` (`https://HOST:PORT`) answers, within 2 s.
 * @param {string} url
 */
export async function reachable(url) {
  try {
    await fetch(`${url}/healthz`, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

/** The WebSocket URL of the server that served this page. */
export function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class Signaling extends EventTarget {
  /** @param {string} url */
  constructor(url) {
    super();
    this.url = url;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** The connection replaced by `reopen`, closed once the new one is in use. */
    /** @type {WebSocket | null} */
    this.stale = null;
  }

  /** Opens the socket; resolves when it is open. */
  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => resolve(undefined);
      ws.onerror = () => reject(new Error('cannot reach the server'));
      ws.onclose = (ev) => {
        this.dispatchEvent(new CustomEvent('close', { detail: { code: ev.code, reason: ev.reason } }));
      };
      ws.onmessage = (ev) => {
        /** @type {ServerMsg} */
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (!SERVER_MSG_TYPES.includes(msg?.type)) {
          console.warn('unknown server message', msg?.type);
          return;
        }
        this.dispatchEvent(new CustomEvent('message', { detail: msg }));
      };
    });
  }

  /**
   * Replaces the connection with a new one (whose first message is then a `resume`):
   * the old one is no longer listened to, and not closed yet, since its close would
   * reach the server as a goodbye before the new one took over (see `closeStale`).
   * Resolves when the new one is open.
   */
  async reopen() {
    const old = this.ws;
    if (old) {
      old.onclose = null;
      old.onmessage = null;
      old.onerror = null;
      this.stale?.close();
      this.stale = old;
    }
    this.ws = null;
    await this.open();
  }

  /** The new connection is in use (the server answered it): the old one goes. */
  closeStale() {
    this.stale?.close();
    this.stale = null;
  }

  /**
   * Sends `msg` if the socket is open. Returns whether it went: while the page
   * reconnects there is no socket to send on, and a caller whose message must not be
   * lost silently (a chat line) tells the user.
   * @param {ClientMsg} msg
   * @returns {boolean}
   */
  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  close() {
    this.closeStale();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
  }
}
