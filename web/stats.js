// @ts-check
/**
 * Measurements of the call's paths, as the browser sees them (from getStats) and as
 * the server reports them for the relayed legs. Sampled once a second per path and
 * kept for ten minutes; turned into comparison reports (JSON and CSV). No DOM here.
 */

import { readCounters, windowFigures, serverFigures, verdict } from './measure.js';

/**
 * One second of one path: the figures of measure.js's `windowFigures` over the last
 * two readings (so counts are per second, not since the connection began), flattened.
 * @typedef {{t: number, path: string, active: boolean} & Record<string, any>} Sample
 */

/** Readings and samples kept per path (ten minutes at one a second). */
const KEEP = 600;

/** Fields of a sample, in CSV column order. */
export const FIELDS = /** @type {const} */ ([
  't', 'path', 'active', 'rttMs', 'jitterMs', 'audioJitterMs', 'lossPct', 'lossInPct', 'audioLossPct', 'remoteLossPct',
  'inKbps', 'outKbps', 'width', 'height', 'fps', 'framesDropped', 'freezes', 'frozenMs', 'firstFrameMs', 'local', 'remote', 'protocol',
]);

export class StatsCollector {
  /** @param {any} session a CallSession */
  constructor(session) {
    this.session = session;
    /** Per-second samples per path, for the panel's charts and the CSV. */
    /** @type {{relay: Sample[], direct: Sample[]}} */
    this.history = { relay: [], direct: [] };
    /** The raw counters of each getStats() call per path: windows are cut from these. */
    /** @type {{relay: (import('./measure.js').Reading & {active: boolean})[], direct: (import('./measure.js').Reading & {active: boolean})[]}} */
    this.readings = { relay: [], direct: [] };
    /** Server measurements of the relayed legs, with their time. */
    /** @type {any[]} */
    this.server = [];
    /** The connection each path's readings come from: a new one starts them afresh. */
    /** @type {{relay?: RTCPeerConnection, direct?: RTCPeerConnection}} */
    this.pcs = {};
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), 1000);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async tick() {
    const s = this.session;
    /** @type {{relay?: Sample, direct?: Sample, server?: any}} */
    const now = {};
    for (const path of /** @type {const} */ (['relay', 'direct'])) {
      const link = s[path];
      if (!link || link.closed) continue;
      const sample = await this.sample(link, path, s.path === path).catch(() => null);
      if (!sample) continue;
      push(this.history[path], sample);
      now[path] = sample;
    }
    if (s.serverStats) {
      const entry = { t: Date.now(), ...s.serverStats };
      push(this.server, entry);
      now.server = entry;
    }
    s.emit('stats', now);
  }

  /**
   * Reads a link's counters; returns the figures of the last second.
   * @param {any} link
   * @param {'relay' | 'direct'} path
   * @param {boolean} active
   * @returns {Promise<Sample | null>}
   */
  async sample(link, path, active) {
    const pc = /** @type {RTCPeerConnection} */ (link.pc);
    const report = await pc.getStats();
    const reading = { ...readCounters(report.values(), Date.now()), active };
    const list = this.readings[path];
    if (this.pcs[path] !== pc) {
      // A new connection's counters start at zero: no delta across the two.
      list.length = 0;
      this.pcs[path] = pc;
    }
    push(list, reading);
    if (list.length < 2) return null;
    const fig = windowFigures(list.slice(-2), { firstFrameMs: link.firstFrameMs || null });
    if (!fig) return null;
    const { streams, samples, seconds, ...flat } = fig;
    return { t: reading.t, path, active, ...flat };
  }

  /**
   * The figures of `path` over the last `seconds` in which it carried the call (the
   * live panel: a path that waits, quiet, keeps the figures of its last turn).
   * @param {'relay' | 'direct'} path
   * @param {number} seconds
   */
  recent(path, seconds) {
    const list = this.readings[path];
    let end = list.length - 1;
    while (end >= 0 && !list[end].active) end--;
    let start = end;
    while (start > 0 && list[start - 1].active && end - start < seconds) start--;
    if (end < 0) return null;
    return windowFigures(list.slice(start, end + 1), { firstFrameMs: this.session[path]?.firstFrameMs || null });
  }
}

/**
 * @param {any[]} list
 * @param {any} item
 */
function push(list, item) {
  list.push(item);
  if (list.length > KEEP) list.shift();
}

/**
 * The report of a comparison run: the verdict, then per path the figures of its
 * measuring window (deltas of the counters between the window's first and last
 * reading), its per-second samples, and for the relay the server's measurements.
 * @param {any} session
 * @param {{startedAt: number, seconds: number, order: string[], warmupMs: number,
 *          windows: {path: string, from?: number, to?: number, error?: string}[]}} run
 */
export function buildReport(session, run) {
  /** @type {Record<string, any>} */
  const paths = {};
  for (const w of run.windows) {
    const from = w.from ?? 0;
    const to = w.to ?? 0;
    const p = /** @type {'relay' | 'direct'} */ (w.path);
    const readings = w.error ? [] : session.collector.readings[p].filter((/** @type {any} */ r) => r.t >= from && r.t <= to);
    const summary = windowFigures(readings, { firstFrameMs: session[p]?.firstFrameMs || null });
    if (w.error || !summary) {
      paths[w.path] = { error: w.error || 'not measured (no readings in the window)' };
      continue;
    }
    const samples = session.collector.history[p].filter((/** @type {Sample} */ s) => s.t > from && s.t <= to);
    /** @type {Record<string, any>} */
    const entry = {
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      activeThroughout: readings.every((/** @type {any} */ r) => r.active),
      summary,
      samples,
    };
    if (w.path === 'relay') {
      const server = session.collector.server.filter((/** @type {any} */ s) => s.t > from && s.t <= to);
      entry.server = { summary: serverFigures(server), samples: server };
    }
    paths[w.path] = entry;
  }
  const v = verdict({
    relay: paths.relay ? paths.relay.summary || { error: paths.relay.error } : null,
    direct: paths.direct ? paths.direct.summary || { error: paths.direct.error } : null,
  });
  return {
    verdict: v,
    room: session.room,
    participant: session.name,
    startedAt: new Date(run.startedAt).toISOString(),
    secondsPerPath: run.seconds,
    warmupMs: run.warmupMs,
    order: run.order,
    measuredBy: {
      browser: 'this browser, from deltas of RTCPeerConnection.getStats() counters inside each path\'s window',
      server: 'the lanrelay server (str0m stats) for the relayed legs: up = this browser to the server, down = the server to this browser',
    },
    paths,
    pathLog: session.pathLog,
  };
}

/**
 * The report as the server keeps it: whole if its JSON fits in `limit` bytes, else
 * without the per-second samples (the figures and the verdict stay).
 * @param {any} report
 * @param {number} limit
 */
export function compactReport(report, limit) {
  if (new TextEncoder().encode(JSON.stringify(report)).length <= limit) return report;
  /** @type {Record<string, any>} */
  const paths = {};
  for (const [k, e] of Object.entries(report.paths)) {
    const { samples, ...rest } = /** @type {any} */ (e);
    if (rest.server) rest.server = { summary: rest.server.summary };
    paths[k] = rest;
  }
  return { ...report, paths, samplesOmitted: true };
}

/**
 * The raw samples of a report as CSV, one row per sample and path.
 * @param {any} report
 */
export function reportToCsv(report) {
  const rows = [FIELDS.join(',')];
  for (const entry of Object.values(report.paths)) {
    for (const s of /** @type {any} */ (entry).samples || []) {
      rows.push(FIELDS.map((f) => csvCell(f === 't' ? new Date(s.t).toISOString() : s[f])).join(','));
    }
  }
  return rows.join('\n') + '\n';
}

/** @param {any} v */
function csvCell(v) {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
