// @ts-check
/**
 * Measurements of the call's paths, as the browser sees them (from getStats) and as
 * the server reports them for the relayed legs. Sampled once a second per path and
 * kept for ten minutes; turned into comparison reports (JSON and CSV). No DOM here.
 */

/**
 * @typedef {{
 *   t: number,             // when (ms since epoch)
 *   path: string,          // 'relay' | 'direct'
 *   active: boolean,       // the call was received on this path at the time
 *   rttMs: number | null,  // ICE round-trip time of the selected pair
 *   jitterMs: number | null,
 *   lossPct: number | null,       // inbound packets lost in the last second, %
 *   remoteLossPct: number | null, // our outbound loss as the other end reports it, %
 *   inKbps: number, outKbps: number,
 *   width: number, height: number, fps: number | null,
 *   framesDropped: number, freezes: number, frozenMs: number,
 *   firstFrameMs: number | null,
 *   local: string, remote: string, protocol: string,
 * }} Sample
 */

/** Samples kept per path (ten minutes at one a second). */
const KEEP = 600;

/** Fields of a sample, in CSV column order. */
export const FIELDS = /** @type {const} */ ([
  't', 'path', 'active', 'rttMs', 'jitterMs', 'lossPct', 'remoteLossPct', 'inKbps', 'outKbps',
  'width', 'height', 'fps', 'framesDropped', 'freezes', 'frozenMs', 'firstFrameMs', 'local', 'remote', 'protocol',
]);

export class StatsCollector {
  /** @param {any} session a CallSession */
  constructor(session) {
    this.session = session;
    /** @type {{relay: Sample[], direct: Sample[]}} */
    this.history = { relay: [], direct: [] };
    /** Server measurements of the relayed legs, with their time. */
    /** @type {any[]} */
    this.server = [];
    /** Totals at the previous sample, per RTCPeerConnection. */
    /** @type {WeakMap<RTCPeerConnection, any>} */
    this.prev = new WeakMap();
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
   * One sample of a link, from the change since its previous sample.
   * @param {any} link
   * @param {string} path
   * @param {boolean} active
   * @returns {Promise<Sample>}
   */
  async sample(link, path, active) {
    const pc = /** @type {RTCPeerConnection} */ (link.pc);
    const report = await pc.getStats();
    const t = Date.now();
    const byId = new Map();
    report.forEach((r) => byId.set(r.id, r));
    const tot = { inBytes: 0, outBytes: 0, lost: 0, received: 0, dropped: 0, freezes: 0, frozen: 0 };
    let jitter = null;
    let remoteLoss = null;
    let width = 0;
    let height = 0;
    let fps = null;
    let rtt = null;
    let local = '';
    let remote = '';
    let protocol = '';
    report.forEach((r) => {
      if (r.type === 'inbound-rtp') {
        tot.inBytes += r.bytesReceived || 0;
        tot.lost += Math.max(0, r.packetsLost || 0);
        tot.received += r.packetsReceived || 0;
        if (r.kind === 'video') {
          tot.dropped += r.framesDropped || 0;
          tot.freezes += r.freezeCount || 0;
          tot.frozen += (r.totalFreezesDuration || 0) * 1000;
          if ((r.frameWidth || 0) * (r.frameHeight || 0) >= width * height) {
            width = r.frameWidth || 0;
            height = r.frameHeight || 0;
            fps = r.framesPerSecond ?? fps;
          }
          if (typeof r.jitter === 'number') jitter = Math.max(jitter ?? 0, r.jitter * 1000);
        }
      } else if (r.type === 'outbound-rtp') {
        tot.outBytes += r.bytesSent || 0;
      } else if (r.type === 'remote-inbound-rtp' && typeof r.fractionLost === 'number') {
        remoteLoss = Math.max(remoteLoss ?? 0, r.fractionLost * 100);
      } else if (r.type === 'transport' && r.selectedCandidatePairId) {
        const pair = byId.get(r.selectedCandidatePairId);
        if (pair) {
          if (typeof pair.currentRoundTripTime === 'number') rtt = pair.currentRoundTripTime * 1000;
          const l = byId.get(pair.localCandidateId);
          const rc = byId.get(pair.remoteCandidateId);
          if (l) local = `${l.candidateType} ${l.address}:${l.port}`;
          if (rc) remote = `${rc.candidateType} ${rc.address}:${rc.port}`;
          protocol = l?.protocol || rc?.protocol || '';
        }
      }
    });
    const prev = this.prev.get(pc);
    this.prev.set(pc, { t, ...tot });
    const secs = prev ? Math.max(0.2, (t - prev.t) / 1000) : 1;
    const d = (/** @type {keyof typeof tot} */ k) => (prev ? Math.max(0, tot[k] - prev[k]) : 0);
    const lostNow = d('lost');
    const gotNow = d('received');
    return {
      t,
      path,
      active,
      rttMs: round(rtt),
      jitterMs: round(jitter),
      lossPct: prev && lostNow + gotNow > 0 ? round((100 * lostNow) / (lostNow + gotNow)) : null,
      remoteLossPct: round(remoteLoss),
      inKbps: round((d('inBytes') * 8) / 1000 / secs) || 0,
      outKbps: round((d('outBytes') * 8) / 1000 / secs) || 0,
      width,
      height,
      fps: round(fps),
      framesDropped: tot.dropped,
      freezes: tot.freezes,
      frozenMs: Math.round(tot.frozen),
      firstFrameMs: link.firstFrameMs || null,
      local,
      remote,
      protocol,
    };
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

/** @param {number | null | undefined} v */
function round(v) {
  return typeof v === 'number' && Number.isFinite(v) ? Math.round(v * 10) / 10 : null;
}

/**
 * Mean of the non-null values of `key`.
 * @param {any[]} samples
 * @param {string} key
 */
function mean(samples, key) {
  const v = samples.map((s) => s[key]).filter((x) => typeof x === 'number');
  return v.length ? round(v.reduce((a, b) => a + b, 0) / v.length) : null;
}

/**
 * A summary of the samples of one path.
 * @param {Sample[]} samples
 */
export function summarize(samples) {
  const last = samples[samples.length - 1];
  const first = samples[0];
  return {
    samples: samples.length,
    rttMs: mean(samples, 'rttMs'),
    jitterMs: mean(samples, 'jitterMs'),
    lossPct: mean(samples, 'lossPct'),
    remoteLossPct: mean(samples, 'remoteLossPct'),
    inKbps: mean(samples, 'inKbps'),
    outKbps: mean(samples, 'outKbps'),
    width: last?.width ?? 0,
    height: last?.height ?? 0,
    fps: mean(samples, 'fps'),
    framesDropped: last && first ? last.framesDropped - first.framesDropped : 0,
    freezes: last && first ? last.freezes - first.freezes : 0,
    frozenMs: last && first ? last.frozenMs - first.frozenMs : 0,
    firstFrameMs: last?.firstFrameMs ?? null,
    local: last?.local ?? '',
    remote: last?.remote ?? '',
    protocol: last?.protocol ?? '',
  };
}

/**
 * The report of a comparison run: per path the summary and the raw samples of its
 * measuring window, plus the server's measurements of the relayed legs.
 * @param {any} session
 * @param {{startedAt: number, seconds: number, order: string[], warmupMs: number,
 *          windows: {path: string, from?: number, to?: number, error?: string}[]}} run
 */
export function buildReport(session, run) {
  /** @type {Record<string, any>} */
  const paths = {};
  for (const w of run.windows) {
    if (w.error || w.from === undefined || w.to === undefined) {
      paths[w.path] = { error: w.error || 'not measured' };
      continue;
    }
    const samples = session.collector.history[w.path].filter(
      (/** @type {Sample} */ s) => s.t >= /** @type {number} */ (w.from) && s.t <= /** @type {number} */ (w.to),
    );
    /** @type {Record<string, any>} */
    const entry = { from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(), summary: summarize(samples), samples };
    if (w.path === 'relay') {
      const server = session.collector.server.filter((/** @type {any} */ s) => s.t >= /** @type {number} */ (w.from) && s.t <= /** @type {number} */ (w.to));
      entry.server = { summary: summarizeServer(server), samples: server };
    }
    paths[w.path] = entry;
  }
  return {
    room: session.room,
    participant: session.name,
    startedAt: new Date(run.startedAt).toISOString(),
    secondsPerPath: run.seconds,
    warmupMs: run.warmupMs,
    order: run.order,
    measuredBy: {
      browser: 'this browser, from RTCPeerConnection.getStats() of each path',
      server: 'the lanrelay server (str0m stats) for the relayed legs: up = this browser to the server, down = the server to this browser',
    },
    paths,
    pathLog: session.pathLog,
  };
}

/** @param {any[]} samples */
function summarizeServer(samples) {
  const pct = (/** @type {string} */ k) => {
    const m = mean(samples, k);
    return m === null ? null : round(m * 100);
  };
  return {
    samples: samples.length,
    rttMs: mean(samples, 'rttMs'),
    upKbps: round((mean(samples, 'upBps') ?? 0) / 1000),
    downKbps: round((mean(samples, 'downBps') ?? 0) / 1000),
    upLossPct: pct('upLoss'),
    downLossPct: pct('downLoss'),
    upJitterMs: mean(samples, 'upJitterMs'),
  };
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
