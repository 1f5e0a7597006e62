// @ts-check
/**
 * The path policy of a call: which path (relay or direct) this side receives on, when
 * the direct connection is started, given up and retried, and when the relay is
 * started or quieted. Every rule of the three modes lives here:
 *
 * - relay:  media through the server only; a direct connection is never tried.
 * - direct: media peer to peer only (two participants); when the direct connection
 *           cannot be established the call says so (state `failed` with `canRelay`)
 *           and the user may move it to the server (`relayChosen`).
 * - auto:   the call starts relayed, a direct connection is tried in the background
 *           (two participants only) and takes over once it delivers media; when it
 *           breaks the call falls back to relay at once and direct is retried later
 *           (DIRECT_RETRY_MS).
 * Viewers always receive relayed; with more than two participants the call stays
 * relayed whatever the mode.
 *
 * Pure decisions, so that `node --test` can check each rule (tests/web/policy.test.mjs):
 * every function takes the facts of the moment (a `Facts` snapshot that session.js
 * builds) and returns what to do; session.js carries it out. Nothing here holds a
 * timer, reads a clock, touches the DOM or an RTCPeerConnection: waits come back as
 * delays in milliseconds for the session to schedule.
 */

/** @typedef {'relay'|'direct'} PathName */
/** @typedef {'relay'|'direct'|'auto'} Mode */

/**
 * What the policy decides on; session.js `facts()` builds it.
 * @typedef {{
 *   mode: string,
 *   role: string,
 *   id: number,
 *   peerCount: number,
 *   onlyPeer: number | null,
 *   relayChosen: boolean,
 *   hasRelay: boolean,
 *   path: PathName | null,
 *   pathReason: string,
 *   direct: {peerId: number, state: string, initiator: boolean} | null,
 *   retryPending: boolean,
 *   forced: PathName | null,
 *   peerUsing: PathName | undefined,
 *   viewers: number,
 * }} Facts
 * - mode: the room's mode once joined (the requested one before).
 * - role: 'participant' or 'viewer'.
 * - id: this participant's id (0 before joining).
 * - peerCount: the other participants in the room; onlyPeer: the other one when there
 *   is exactly one, else null.
 * - relayChosen: the call was moved to the relay by a user (here or on the other side).
 * - hasRelay: a relay link to the server exists.
 * - path / pathReason: the path this side receives on, and why.
 * - direct: the direct link, if any: its peer, its state ('connecting', 'connected',
 *   'delivering', ...) and whether this side made the offer.
 * - retryPending: a retry of the direct connection is scheduled.
 * - forced: a path pinned by a comparison run.
 * - peerUsing: the path the other side receives on (what we send on).
 * - viewers: how many viewers watch the room (through the server).
 */

/** The call modes. */
export const MODES = /** @type {const} */ (['relay', 'direct', 'auto']);
/**
 * How long an ICE restart (after the connection to the server was interrupted: a new
 * network, a new address) may take to reconnect the same peer connection before the
 * call is rebuilt from scratch (leave and join again, which the others see).
 */
export const RESTART_ICE_MS = 8000;
/**
 * How long after losing the signaling connection the page tries to resume the same
 * participant on a new one. Below the server's grace period (`--resume-grace`,
 * 30 s by default), so the last try still finds the participant waiting.
 */
export const RESUME_WINDOW_MS = 25000;
/** What the page says while it recovers from a change of network. */
export const NETWORK_CHANGED = 'network changed';
/**
 * Reconnection attempts before giving up: about two minutes of RECONNECT_MAX_MS tries,
 * so a page rides out a server restart (systemd brings it back in seconds) and even a
 * reboot of the machine, without anyone clicking.
 */
export const MAX_RETRIES = 60;
/** The longest wait between two reconnection attempts. */
export const RECONNECT_MAX_MS = 2000;
/** Delays before trying a direct connection again in auto mode, one per failure. */
export const DIRECT_RETRY_MS = [15000, 30000, 60000];
/** Keep sending on the relay this long after the other side moved to direct. */
export const RELAY_GRACE_MS = 1500;

/** Why the call stays on the relay with three or more in the room. */
export const GROUP_REASON = 'more than two participants: the call stays relayed';
/** Why a direct offer is turned down. */
export const REFUSE_REASON = 'this side does not use a direct path';

/**
 * The mode a session asks the server for: the one given if known, else auto; viewers
 * always ask for relay (they receive from the server only).
 * @param {string | undefined} mode
 * @param {string} role
 * @returns {Mode}
 */
export function requestedMode(mode, role) {
  if (role === 'viewer') return 'relay';
  return MODES.includes(/** @type {any} */ (mode || '')) ? /** @type {Mode} */ (mode) : 'auto';
}

/**
 * Just joined: whether to open the relay link, and whether a direct call has to wait
 * for its other participant. A direct call opens no relay unless a user chose it.
 * @param {Facts} f
 */
export function onJoined(f) {
  return {
    startRelay: f.mode !== 'direct' || f.relayChosen || f.role === 'viewer',
    waiting: f.mode === 'direct' && !f.relayChosen && f.peerCount === 0,
  };
}

/**
 * Someone left: a direct call without a relay link is back to waiting when nobody is
 * left.
 * @param {Facts} f
 */
export function waitingAfterLeave(f) {
  return f.mode === 'direct' && !f.hasRelay && f.peerCount === 0;
}

/**
 * Which side offers the direct connection: the newer participant (higher id); the
 * other waits for its offer. Both sides agree without talking.
 * @param {number} id
 * @param {number} peer
 */
export function initiates(id, peer) {
  return id > peer;
}

/**
 * Whether the direct connection should run now, as the room and mode require.
 * - `stop`: close any direct link (with `reason`); afterwards ask `groupNeedsRelay`.
 * - `keep`: the direct link to the only other participant exists already.
 * - `retryPending`: a retry is scheduled; wait for it.
 * - `start`: this side offers a direct connection to `peerId`.
 * - `awaitOffer`: the other side offers; wait for its offer.
 * @param {Facts} f
 * @returns {{do: 'stop', reason: string} | {do: 'keep'} | {do: 'retryPending'} | {do: 'start', peerId: number} | {do: 'awaitOffer'}}
 */
export function directPlan(f) {
  const peer = f.onlyPeer;
  // Viewers receive from the server only, even in an automatic room.
  const wanted = peer !== null && f.role !== 'viewer' && !f.relayChosen && (f.mode === 'direct' || f.mode === 'auto');
  if (peer === null || !wanted) {
    return { do: 'stop', reason: f.peerCount > 1 ? GROUP_REASON : 'direct path not used' };
  }
  if (f.direct && f.direct.peerId === peer) return { do: 'keep' };
  if (f.retryPending) return { do: 'retryPending' };
  if (initiates(f.id, peer)) return { do: 'start', peerId: peer };
  return { do: 'awaitOffer' };
}

/**
 * With more than two participants the call moves to the relay (asked after any
 * direct link is closed, which may have moved it already).
 * @param {Facts} f
 */
export function groupNeedsRelay(f) {
  return f.peerCount > 1 && f.path !== 'relay' && f.hasRelay;
}

/**
 * A direct offer arrived from `from`: turned down (with the reason to send back) when
 * this side does not go direct; else answered, on a new link unless the current one
 * already answers that participant. Accepting cancels a scheduled retry: the other
 * side is trying now.
 * @param {Facts} f
 * @param {number} from
 * @returns {{refuse: string} | {refuse: null, newLink: boolean}}
 */
export function onDirectOffer(f, from) {
  if (f.role === 'viewer' || f.relayChosen || f.mode === 'relay' || f.peerCount !== 1) return { refuse: REFUSE_REASON };
  return { refuse: null, newLink: !f.direct || f.direct.peerId !== from || f.direct.initiator };
}

/**
 * The direct link delivers media: receive on it, unless a comparison run pins the
 * relay.
 * @param {Facts} f
 * @returns {{path: 'direct', reason: string} | null}
 */
export function onDirectDelivering(f) {
  if (f.forced && f.forced !== 'direct') return null;
  return { path: 'direct', reason: f.mode === 'direct' ? 'direct connection established' : 'the direct path delivers media' };
}

/**
 * The direct link reported `failed` (never delivered) or `broken` (stopped
 * delivering): the reason to close it with, and the failure to report.
 * @param {'failed'|'broken'} state
 * @param {string} [reason] the link's own account
 */
export function directLinkTrouble(state, reason) {
  const what = state === 'failed' ? 'direct connection failed' : 'direct path broke';
  return { close: reason || what, failure: `${what}: ${reason || 'unknown'}` };
}

/**
 * The other side closed the direct path (`bye`): it broke if it delivered, else it
 * failed.
 * @param {string} linkState the state of our direct link
 * @param {string} reason the other side's reason
 */
export function peerClosedDirect(linkState, reason) {
  const what = linkState === 'delivering' ? 'direct path broke' : 'direct connection failed';
  return { close: `the other side closed the direct path: ${reason}`, failure: `${what}: ${reason}` };
}

/**
 * No media arrived on the direct link for `ms`: while receiving on it, fall back now
 * rather than wait for ICE to notice (unless a comparison run pins direct).
 * @param {Facts} f
 * @param {boolean} current the stalled link is the session's direct link
 * @param {number} ms
 * @returns {{close: string, failure: string} | null}
 */
export function onDirectStall(f, current, ms) {
  if (!current || f.path !== 'direct' || f.forced === 'direct') return null;
  return { close: `no media for ${ms} ms`, failure: `direct path broke: no media for ${ms} ms` };
}

/**
 * The direct connection failed or broke (here or on the other side), and is closed.
 * A direct call without relay fails and offers the relay (`canRelay`); otherwise the
 * call goes on relayed (switching only if not already there for this very reason),
 * and an automatic call tries direct again later (see `directRetryDelay`).
 * @param {Facts} f the facts after the direct link was closed
 * @param {string} reason
 * @returns {{fail: true, reason: string, canRelay: true} | {fail: false, toRelay: boolean, reason: string, retryDirect: boolean}}
 */
export function afterDirectFailure(f, reason) {
  if (f.mode === 'direct' && !f.hasRelay) return { fail: true, reason, canRelay: true };
  return { fail: false, toRelay: f.path !== 'relay' || f.pathReason !== reason, reason, retryDirect: f.mode === 'auto' };
}

/**
 * The direct link was closed: if we received on it, receive on the relay, when there
 * is one (a direct call without relay reports the failure instead).
 * @param {Facts} f
 */
export function relayAfterDirectClosed(f) {
  return f.path === 'direct' && f.hasRelay;
}

/**
 * How long to wait before trying direct again after `failures` failures in a row
 * (counted since it last delivered), or null when it is not tried again.
 * @param {number} failures
 */
export function directRetryDelay(failures) {
  return failures < DIRECT_RETRY_MS.length ? DIRECT_RETRY_MS[failures] : null;
}

/**
 * The path the other side receives on when a direct link starts (until it says):
 * direct in a direct call, else whatever it said before, else the relay.
 * @param {Facts} f
 * @returns {PathName}
 */
export function peerPathAtDirectStart(f) {
  return f.mode === 'direct' ? 'direct' : f.peerUsing || 'relay';
}

/**
 * The other side now receives on `path` (its `using`); we send there.
 * For the relay: send on it (opening it if needed), stop sending directly when a
 * comparison run pins the relay, and in a direct call whose direct link does not
 * deliver, follow the other side to the relay (`follow`: the reason).
 * For direct: send directly and quiet the relay after RELAY_GRACE_MS.
 * @param {Facts} f
 * @param {PathName} path
 */
export function onPeerUsing(f, path) {
  if (path === 'relay') {
    const follow = f.mode === 'direct' && f.path !== 'relay' && f.direct?.state !== 'delivering';
    return {
      sendOn: /** @type {PathName} */ ('relay'),
      stopDirect: f.forced === 'relay',
      follow: follow ? 'the other participant switched the call to relay' : null,
    };
  }
  return { sendOn: /** @type {PathName} */ ('direct'), stopDirect: false, follow: null };
}

/**
 * A new relay link sends nothing when the other side already receives from us
 * directly.
 * @param {Facts} f
 */
export function relaySendsAtStart(f) {
  return !(f.peerUsing === 'direct' && f.direct?.state === 'delivering');
}

/**
 * Whether to schedule quieting the relay (RELAY_GRACE_MS from now): only once the
 * other side receives directly.
 * @param {Facts} f
 */
export function shouldQuietRelay(f) {
  return f.peerUsing === 'direct';
}

/**
 * When the grace period is over: stop sending on the relay if the other side still
 * receives directly, the direct link delivers, and no viewer watches through the
 * server.
 * @param {Facts} f
 */
export function relayQuietNow(f) {
  return f.peerUsing === 'direct' && f.direct?.state === 'delivering' && f.viewers === 0;
}

/**
 * Whether to tell the other participant which path we receive on (`using`): when
 * there is exactly one and a direct path is or may be in play.
 * @param {Facts} f
 */
export function tellPeerPath(f) {
  return f.onlyPeer !== null && (f.direct !== null || f.mode !== 'relay');
}

/**
 * The relay link's state changed.
 * - `receive`: first connection: receive on the relay.
 * - `announce`: (re)connected while a path is chosen: say which.
 * - `ignore`: trouble on the relay while receiving directly does not matter.
 * - `restart`: interrupted (most often the network changed under a phone): restart
 *   ICE on the same connection, after resuming the signaling connection (it may have
 *   died with the network unnoticed); rebuild the call if still down after `ms`.
 *   `quiet` when receiving directly: the relay is mended without a word.
 * - `reconnect`: failed: rebuild the call.
 * @param {Facts} f
 * @param {string} state
 * @param {string} [reason]
 * @returns {{do: 'receive', reason: string} | {do: 'announce'} | {do: 'ignore'}
 *   | {do: 'restart', reason: string, ms: number, lost: string, quiet: boolean}
 *   | {do: 'reconnect', reason: string}}
 */
export function onRelayState(f, state, reason) {
  if (state === 'connected') return f.path ? { do: 'announce' } : { do: 'receive', reason: 'connected to the server' };
  if (state === 'broken') {
    return { do: 'restart', reason: NETWORK_CHANGED, ms: RESTART_ICE_MS, lost: 'media path to the server lost', quiet: f.path === 'direct' };
  }
  if (state === 'failed' && f.path !== 'direct') return { do: 'reconnect', reason: reason || 'media connection to the server failed' };
  return { do: 'ignore' };
}

/**
 * The relay connection went silent (it heard steadily, then nothing for a moment):
 * the network most likely changed, so restart as for `broken` — unless this side
 * receives directly, when the relay may carry nothing on purpose.
 * @param {Facts} f
 * @returns {{do: 'restart', reason: string, ms: number, lost: string, quiet: boolean} | {do: 'ignore'}}
 */
export function onRelaySilent(f) {
  if (f.path === 'direct') return { do: 'ignore' };
  return { do: 'restart', reason: NETWORK_CHANGED, ms: RESTART_ICE_MS, lost: 'media path to the server lost', quiet: false };
}

/**
 * The server reported an error: end the call (`fail`), rebuild it (`reconnect`),
 * drop only the relay link when receiving directly (`dropRelay`), or nothing.
 * @param {Facts} f
 * @param {string} code
 * @returns {'fail'|'reconnect'|'dropRelay'|'ignore'}
 */
export function onServerError(f, code) {
  // Removed by the host, or a locked room: joining again would not help.
  if (code === 'roomFull' || code === 'badName' || code === 'forbidden' || code === 'removed' || code === 'roomLocked') return 'fail';
  if (code === 'mediaFailed') return f.path === 'direct' ? 'dropRelay' : 'reconnect';
  // The participant was not kept (it left, or the server restarted): join afresh.
  if (code === 'resumeRefused') return 'reconnect';
  return 'ignore';
}

/**
 * Delay before attempt `attempt` (1, 2, ...) to resume the participant on a new
 * signaling connection, `elapsedMs` after the old one was lost; null once the
 * attempt would come after RESUME_WINDOW_MS (then the call is rebuilt).
 * @param {number} attempt
 * @param {number} elapsedMs
 */
export function resumeDelay(attempt, elapsedMs) {
  const delay = Math.min(RECONNECT_MAX_MS, 250 * 2 ** (attempt - 1));
  return elapsedMs + delay > RESUME_WINDOW_MS ? null : delay;
}

/**
 * Delay before reconnection attempt `attempt` (1, 2, ...), doubling from 0.25 s to at
 * most RECONNECT_MAX_MS, or null once MAX_RETRIES attempts were made. The cap is short
 * because the server is on the LAN and a try costs it one refused or accepted TCP
 * connection: a server back after any outage has its pages again within about 2 s,
 * where a longer backoff (it was 8 s) would leave them waiting.
 * @param {number} attempt
 */
export function reconnectDelay(attempt) {
  if (attempt > MAX_RETRIES) return null;
  return Math.min(RECONNECT_MAX_MS, 250 * 2 ** (attempt - 1));
}

/**
 * A comparison run pins `path` (see comparison.js). For direct: receive on it if it
 * delivers, else start it when this side offers (`start`), else wait. For the relay:
 * receive on it (the session opens it if needed).
 * @param {Facts} f
 * @param {PathName} path
 * @returns {{do: 'receive'} | {do: 'start', peerId: number} | {do: 'wait'}}
 */
export function onForced(f, path) {
  if (path === 'relay') return { do: 'receive' };
  if (f.direct?.state === 'delivering') return { do: 'receive' };
  if (!f.direct && f.onlyPeer !== null && initiates(f.id, f.onlyPeer)) return { do: 'start', peerId: f.onlyPeer };
  return { do: 'wait' };
}

/**
 * The path by the usual rules once nothing is pinned: direct if it delivers, else the
 * relay if there is one, else none (keep as is).
 * @param {Facts} f
 * @returns {PathName | null}
 */
export function settledPath(f) {
  if (f.direct?.state === 'delivering') return 'direct';
  if (f.hasRelay) return 'relay';
  return null;
}

/**
 * After a comparison run: an automatic call without a direct link looks at the direct
 * path again (the run may have closed it).
 * @param {Facts} f
 */
export function reconsiderDirectAfterRun(f) {
  return !f.direct && f.mode === 'auto';
}
