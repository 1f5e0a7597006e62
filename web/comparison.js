// @ts-check
/**
 * The comparison run: the call is carried on each path in turn (relayed, then direct,
 * or the other way round) for a timed window, and what the browser and the server
 * measured in each window becomes a report (stats.js builds it from the session's
 * collector, measure.js does the arithmetic and the verdict), which is also sent to
 * the server so that others can read it. Both sides are pinned to the measured path for the run, through the
 * session's `forcePath`/`releasePath`; this module never speaks the protocol itself
 * and never touches the DOM (compare.js is its panel).
 */
import { buildReport, compactReport } from './stats.js';
import { MAX_REPORT_BYTES } from './signaling.js';

/** @typedef {import('./policy.js').PathName} PathName */
/** @typedef {import('./session.js').CallSession} CallSession */

/** Time on a path before its window starts, so the switch itself is not measured. */
export const WARMUP_MS = 2000;
/** How much longer than the direct connection's own timeout a path may take to come up. */
const READY_SLACK_MS = 2000;

/**
 * Runs the call on each path in turn for `seconds` and returns a report of what was
 * measured on each (see stats.js). Needs exactly two participants.
 * @param {CallSession} session
 * @param {number} seconds
 * @param {PathName[]} [order]
 * @param {(msg: string) => void} [progress]
 */
export async function runComparison(session, seconds, order = ['relay', 'direct'], progress = () => {}) {
  const peer = session.onlyPeer;
  if (peer === null) throw new Error('a comparison needs exactly two participants');
  /** @type {{path: string, from?: number, to?: number, error?: string}[]} */
  const windows = [];
  const warmup = WARMUP_MS;
  const startedAt = Date.now();
  try {
    for (const path of order) {
      progress(`switching to ${path}`);
      session.forcePath(peer, path, `comparison run: ${path}`);
      const ready = await waitFor(() => pathReady(session, path), session.directTimeoutMs + READY_SLACK_MS);
      if (!ready) {
        windows.push({ path, error: path === 'direct' ? session.lastDirectFailure || 'the direct path did not deliver media' : 'the relay did not connect' });
        continue;
      }
      session.switchPath(path, `comparison run: ${path}`);
      await sleep(warmup);
      const from = Date.now();
      for (let left = seconds; left > 0; left--) {
        progress(`measuring ${path}: ${left} s left`);
        await sleep(1000);
      }
      windows.push({ path, from, to: Date.now() });
    }
  } finally {
    session.releasePath(peer, 'comparison run finished');
  }
  progress('done');
  const report = buildReport(session, { startedAt, seconds, order, warmupMs: warmup, windows });
  // The server keeps the room's latest report for GET /api/rooms/ROOM/comparison.
  session.shareComparison(compactReport(report, MAX_REPORT_BYTES));
  return report;
}

/**
 * Whether `path` carries media both ways for a window: we receive on it (the relay
 * once connected, the direct path once it delivers), and the other side has said it
 * receives on it too, so that what we send goes there. Until then our own sending may
 * still be on the other path, or paused (a quiet relay), and the window would measure
 * a one-way call.
 * @param {CallSession} session
 * @param {PathName} path
 */
function pathReady(session, path) {
  const receiving = path === 'relay' ? session.relay?.state === 'delivering' || session.relay?.state === 'connected' : session.direct?.state === 'delivering';
  return receiving && session.peerUsing === path;
}

/**
 * Polls `cond` every 200 ms until it holds or `ms` pass.
 * @param {() => boolean | undefined} cond
 * @param {number} ms
 */
async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(200);
  }
  return !!cond();
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
