// @ts-check
/**
 * The arithmetic of the comparison: what one path did inside a time window, from the
 * deltas of the browser's cumulative counters (getStats) between the window's first
 * and last reading, per stream (audio, each video stream), in the units people read
 * (ms, %, kbit/s, frames per second); and the verdict that compares two paths. Pure:
 * no DOM, no RTCPeerConnection, no clock; stats.js feeds it readings, and
 * tests/web/measure.test.mjs drives it with made-up ones.
 *
 * Why deltas: getStats counters (packets lost, freezes, frozen time, frames dropped)
 * count from the connection's start, so a freeze that happened before a window, or
 * while the other path carried the call, would otherwise show in every later sample.
 * Instantaneous values (interarrival jitter, frame size) are averaged over the
 * readings inside the window instead.
 */

/**
 * What one getStats() call says of one connection, reduced to counters.
 * @typedef {{
 *   t: number,
 *   inbound: Record<string, InboundCounters>,
 *   outbound: Record<string, {kind: string, bytes: number, packets: number}>,
 *   remoteInbound: Record<string, {kind: string, lost: number, jitterMs: number | null, rttTotalS: number, rtts: number}>,
 *   pair: null | {rttTotalS: number, responses: number, currentRttMs: number | null,
 *                 local: string, remote: string, protocol: string},
 * }} Reading
 */

/**
 * @typedef {{
 *   kind: string, bytes: number, packets: number, lost: number, jitterMs: number | null,
 *   framesDecoded: number, framesDropped: number, freezes: number, frozenS: number,
 *   width: number, height: number,
 * }} InboundCounters
 */

/** A difference of loss smaller than this (percentage points) is noise. */
export const LOSS_NOISE_POINTS = 1;
/** A round-trip difference smaller than this (ms), or than 20 %, is noise. */
export const RTT_NOISE_MS = 5;
/** A jitter difference smaller than this (ms), or than 50 %, is noise. */
export const JITTER_NOISE_MS = 3;
/** A frame-rate difference smaller than this (fps) is noise. */
export const FPS_NOISE = 3;
/** More frozen time than this (ms) in a window is a difference worth naming. */
export const FROZEN_NOISE_MS = 500;

/**
 * Reduces one getStats() report (any iterable of stats dictionaries) to a Reading.
 * @param {Iterable<any>} report
 * @param {number} t when it was read (ms)
 * @returns {Reading}
 */
export function readCounters(report, t) {
  /** @type {Map<string, any>} */
  const byId = new Map();
  for (const r of report) byId.set(r.id, r);
  /** @type {Reading} */
  const out = { t, inbound: {}, outbound: {}, remoteInbound: {}, pair: null };
  for (const r of byId.values()) {
    if (r.type === 'inbound-rtp') {
      out.inbound[r.id] = {
        kind: r.kind,
        bytes: r.bytesReceived || 0,
        packets: r.packetsReceived || 0,
        lost: Math.max(0, r.packetsLost || 0),
        jitterMs: typeof r.jitter === 'number' ? r.jitter * 1000 : null,
        framesDecoded: r.framesDecoded || 0,
        framesDropped: r.framesDropped || 0,
        freezes: r.freezeCount || 0,
        frozenS: r.totalFreezesDuration || 0,
        width: r.frameWidth || 0,
        height: r.frameHeight || 0,
      };
    } else if (r.type === 'outbound-rtp') {
      out.outbound[r.id] = { kind: r.kind, bytes: r.bytesSent || 0, packets: r.packetsSent || 0 };
    } else if (r.type === 'remote-inbound-rtp') {
      out.remoteInbound[r.localId || r.id] = {
        kind: r.kind,
        lost: Math.max(0, r.packetsLost || 0),
        jitterMs: typeof r.jitter === 'number' ? r.jitter * 1000 : null,
        rttTotalS: r.totalRoundTripTime || 0,
        rtts: r.roundTripTimeMeasurements || 0,
      };
    } else if (r.type === 'transport' && r.selectedCandidatePairId) {
      const p = byId.get(r.selectedCandidatePairId);
      if (p) out.pair = pairReading(p, byId);
    }
  }
  // Firefox has no transport stats: the candidate pair in use says `selected`.
  if (!out.pair) {
    for (const r of byId.values()) {
      if (r.type === 'candidate-pair' && r.selected) out.pair = pairReading(r, byId);
    }
  }
  return out;
}

/**
 * The reading of the candidate pair `p` in use.
 * @param {any} p
 * @param {Map<string, any>} byId
 */
function pairReading(p, byId) {
  const l = byId.get(p.localCandidateId);
  const rc = byId.get(p.remoteCandidateId);
  return {
    rttTotalS: p.totalRoundTripTime || 0,
    responses: p.responsesReceived || 0,
    currentRttMs: typeof p.currentRoundTripTime === 'number' ? p.currentRoundTripTime * 1000 : null,
    local: l ? `${l.candidateType} ${l.address}:${l.port}` : '',
    remote: rc ? `${rc.candidateType} ${rc.address}:${rc.port}` : '',
    protocol: l?.protocol || rc?.protocol || '',
  };
}

/** @param {number | null | undefined} v @param {number} [digits] */
export function round(v, digits = 1) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** @param {(number | null | undefined)[]} vs */
function mean(vs) {
  const n = /** @type {number[]} */ (vs.filter((v) => typeof v === 'number' && Number.isFinite(v)));
  return n.length ? n.reduce((a, b) => a + b, 0) / n.length : null;
}

/**
 * What a path did between the first and the last of `readings` (the readings taken
 * inside its window, oldest first; at least two). Streams are matched by their stats
 * id; a stream that appears during the window counts from zero.
 * @param {Reading[]} readings
 * @param {{firstFrameMs?: number | null}} [extra]
 */
export function windowFigures(readings, extra = {}) {
  if (readings.length < 2) return null;
  const a = readings[0];
  const b = readings[readings.length - 1];
  const secs = Math.max(0.001, (b.t - a.t) / 1000);
  const later = readings.slice(1);
  /** Inbound figures of one kind. */
  const inbound = (/** @type {string} */ kind) => {
    const ids = Object.keys(b.inbound).filter((id) => b.inbound[id].kind === kind);
    if (!ids.length) return null;
    let bytes = 0, packets = 0, lost = 0, frames = 0, dropped = 0, freezes = 0, frozenS = 0;
    for (const id of ids) {
      const end = b.inbound[id];
      const start = a.inbound[id];
      const d = (/** @type {keyof InboundCounters} */ k) => Math.max(0, /** @type {number} */ (end[k]) - (start ? /** @type {number} */ (start[k]) : 0));
      bytes += d('bytes');
      packets += d('packets');
      lost += d('lost');
      frames += d('framesDecoded');
      dropped += d('framesDropped');
      freezes += d('freezes');
      frozenS += d('frozenS');
    }
    // Jitter: the mean, over the window's readings, of the busiest stream's estimate.
    const busiest = ids.reduce((x, y) => (b.inbound[y].packets > b.inbound[x].packets ? y : x));
    const jitter = mean(later.map((r) => r.inbound[busiest]?.jitterMs));
    const last = b.inbound[busiest];
    const fig = {
      packets,
      lost,
      lossPct: packets + lost > 0 ? round((100 * lost) / (packets + lost), 2) : null,
      kbps: round((bytes * 8) / 1000 / secs),
      jitterMs: round(jitter),
    };
    if (kind !== 'video') return fig;
    return {
      ...fig,
      width: last.width,
      height: last.height,
      fps: round(frames / secs),
      framesDropped: dropped,
      freezes,
      frozenMs: Math.round(frozenS * 1000),
    };
  };
  /** Outbound figures of one kind, with the loss the other end reports. */
  const outbound = (/** @type {string} */ kind) => {
    const ids = Object.keys(b.outbound).filter((id) => b.outbound[id].kind === kind);
    if (!ids.length) return null;
    let bytes = 0, packets = 0, lost = 0;
    for (const id of ids) {
      bytes += Math.max(0, b.outbound[id].bytes - (a.outbound[id]?.bytes || 0));
      packets += Math.max(0, b.outbound[id].packets - (a.outbound[id]?.packets || 0));
      if (b.remoteInbound[id]) lost += Math.max(0, b.remoteInbound[id].lost - (a.remoteInbound[id]?.lost || 0));
    }
    return {
      packets,
      lost,
      // The other end's reports lag by up to a few seconds: a rough figure.
      lossPct: packets > 0 ? round((100 * Math.min(lost, packets)) / packets, 2) : null,
      kbps: round((bytes * 8) / 1000 / secs),
    };
  };
  // Round trip: every measurement taken inside the window, pooled: ICE's (STUN
  // checks on the selected pair, one every few seconds) and RTCP's (each sent
  // stream's receiver reports, about one a second each).
  let iceS = 0;
  let iceN = 0;
  if (a.pair && b.pair && b.pair.responses > a.pair.responses) {
    iceN = b.pair.responses - a.pair.responses;
    iceS = b.pair.rttTotalS - a.pair.rttTotalS;
  }
  let rtcpS = 0;
  let rtcpN = 0;
  for (const [id, end] of Object.entries(b.remoteInbound)) {
    const start = a.remoteInbound[id];
    if (start && end.rtts > start.rtts) {
      rtcpN += end.rtts - start.rtts;
      rtcpS += end.rttTotalS - start.rttTotalS;
    }
  }
  const rttSamples = iceN + rtcpN;
  const rttMs = rttSamples > 0 ? ((iceS + rtcpS) / rttSamples) * 1000 : mean(later.map((r) => r.pair?.currentRttMs));
  const audioIn = inbound('audio');
  const videoIn = inbound('video');
  const audioOut = outbound('audio');
  const videoOut = outbound('video');
  const lostIn = (audioIn?.lost || 0) + (videoIn?.lost || 0);
  const gotIn = (audioIn?.packets || 0) + (videoIn?.packets || 0);
  // Audio both ways: ours received, and ours sent as the other end's receiver reports
  // count it (they come every few seconds, so over a short window this is rough).
  const aLost = (audioIn?.lost || 0) + (audioOut?.lost || 0);
  const aAll = (audioIn ? audioIn.packets + audioIn.lost : 0) + (audioOut?.packets || 0);
  const lossInPct = gotIn + lostIn > 0 ? round((100 * lostIn) / (gotIn + lostIn), 2) : null;
  const audioLossPct = aAll > 0 ? round((100 * aLost) / aAll, 2) : null;
  return {
    samples: readings.length - 1,
    seconds: round(secs),
    rttMs: round(rttMs),
    rttSamples,
    rttIceMs: iceN > 0 ? round((iceS / iceN) * 1000) : null,
    rttRtcpMs: rtcpN > 0 ? round((rtcpS / rtcpN) * 1000) : null,
    lossPct: lossInPct,
    lossInPct,
    audioLossPct,
    remoteLossPct: videoOut?.lossPct ?? audioOut?.lossPct ?? null,
    jitterMs: videoIn?.jitterMs ?? null,
    audioJitterMs: audioIn?.jitterMs ?? null,
    inKbps: round((audioIn?.kbps || 0) + (videoIn?.kbps || 0)) ?? 0,
    outKbps: round((audioOut?.kbps || 0) + (videoOut?.kbps || 0)) ?? 0,
    width: videoIn?.width ?? 0,
    height: videoIn?.height ?? 0,
    fps: videoIn?.fps ?? null,
    framesDropped: videoIn?.framesDropped ?? 0,
    freezes: videoIn?.freezes ?? 0,
    frozenMs: videoIn?.frozenMs ?? 0,
    firstFrameMs: extra.firstFrameMs ?? null,
    local: b.pair?.local || '',
    remote: b.pair?.remote || '',
    protocol: b.pair?.protocol || '',
    streams: { audioIn, videoIn, audioOut, videoOut },
  };
}

/** @typedef {NonNullable<ReturnType<typeof windowFigures>>} Figures */

/**
 * The server's measurements of the relayed legs inside a window: the means of its
 * once-a-second `stats` (already per second), in ms, % and kbit/s.
 * @param {any[]} samples LegStats objects
 */
export function serverFigures(samples) {
  const m = (/** @type {string} */ k, f = 1) => round((mean(samples.map((s) => s[k])) ?? NaN) * f);
  return {
    samples: samples.length,
    rttMs: m('rttMs'),
    upKbps: m('upBps', 0.001),
    downKbps: m('downBps', 0.001),
    upLossPct: m('upLoss', 100),
    downLossPct: m('downLoss', 100),
    upJitterMs: m('upJitterMs'),
    upAudioJitterMs: m('upAudioJitterMs'),
    downJitterMs: m('downJitterMs'),
    downAudioJitterMs: m('downAudioJitterMs'),
  };
}

/**
 * Which path was better for this pair, on what, and by how much. Differences within
 * the noise thresholds above are not counted; when none is left, it is a tie. Loss and
 * freezes weigh most (they are what people see and hear), then round trip (delay in
 * conversation), then frame rate and resolution, then jitter.
 * @param {{relay?: Figures | null | {error: string}, direct?: Figures | null | {error: string}}} paths
 * @returns {{better: 'relay' | 'direct' | 'tie' | null, text: string, reasons: string[], withinNoise: string[]}}
 */
export function verdict(paths) {
  const r = paths.relay;
  const d = paths.direct;
  const err = (/** @type {any} */ p) => !p || 'error' in p;
  if (err(r) && err(d)) return { better: null, text: 'No verdict: neither path was measured.', reasons: [], withinNoise: [] };
  if (err(d)) {
    const why = /** @type {any} */ (d)?.error || 'it was not measured';
    return { better: 'relay', text: `Relay: the direct path did not work (${why}).`, reasons: ['the direct path did not work'], withinNoise: [] };
  }
  if (err(r)) {
    const why = /** @type {any} */ (r)?.error || 'it was not measured';
    return { better: 'direct', text: `Direct: the relay did not work (${why}).`, reasons: ['the relay did not work'], withinNoise: [] };
  }
  const R = /** @type {Figures} */ (r);
  const D = /** @type {Figures} */ (d);
  /** @type {{path: 'relay' | 'direct', weight: number, text: string}[]} */
  const wins = [];
  /** @type {string[]} */
  const same = [];
  const name = (/** @type {'relay' | 'direct'} */ p) => (p === 'relay' ? 'the relayed path' : 'the direct path');

  // Loss of everything received, audio and video (Chrome does not count a packet
  // that came back by retransmission as received: this is the path's own loss).
  const lr = R.lossPct ?? 0;
  const ld = D.lossPct ?? 0;
  if (Math.abs(lr - ld) >= LOSS_NOISE_POINTS) {
    const worse = lr > ld ? 'relay' : 'direct';
    const other = worse === 'relay' ? 'direct' : 'relay';
    wins.push({ path: other, weight: 4, text: `${name(worse)} lost ${round(Math.max(lr, ld))} % of packets (${other}: ${round(Math.min(lr, ld))} %)` });
  } else same.push(lr < 0.5 && ld < 0.5 ? 'no loss on either' : 'similar loss');

  const fr = R.frozenMs ?? 0;
  const fd = D.frozenMs ?? 0;
  if (Math.abs(fr - fd) >= FROZEN_NOISE_MS) {
    const worse = fr > fd ? 'relay' : 'direct';
    wins.push({ path: worse === 'relay' ? 'direct' : 'relay', weight: 4, text: `video froze for ${Math.max(fr, fd)} ms on ${name(worse)}` });
  } else same.push(fr === 0 && fd === 0 ? 'no freezes' : 'similar freezes');

  if (R.rttMs !== null && D.rttMs !== null) {
    const diff = Math.abs(R.rttMs - D.rttMs);
    if (diff >= RTT_NOISE_MS && diff >= 0.2 * Math.min(R.rttMs, D.rttMs)) {
      const better = R.rttMs < D.rttMs ? 'relay' : 'direct';
      wins.push({ path: better, weight: 2, text: `${Math.round(diff)} ms lower round trip (${Math.round(Math.min(R.rttMs, D.rttMs))} vs ${Math.round(Math.max(R.rttMs, D.rttMs))} ms)` });
    } else same.push('similar round trip');
  }

  const pr = R.width * R.height;
  const pd = D.width * D.height;
  if (pr !== pd && Math.max(pr, pd) > 0) {
    const better = pr > pd ? 'relay' : 'direct';
    const hi = better === 'relay' ? R : D;
    const lo = better === 'relay' ? D : R;
    wins.push({ path: better, weight: 1, text: `higher resolution (${hi.width}×${hi.height} vs ${lo.width}×${lo.height})` });
  } else if (pr > 0) same.push('same resolution');
  if (R.fps !== null && D.fps !== null) {
    if (Math.abs(R.fps - D.fps) >= FPS_NOISE) {
      const better = R.fps > D.fps ? 'relay' : 'direct';
      wins.push({ path: better, weight: 1, text: `higher frame rate (${Math.max(R.fps, D.fps)} vs ${Math.min(R.fps, D.fps)} fps)` });
    } else same.push('same frame rate');
  }

  const jr = R.audioJitterMs ?? R.jitterMs;
  const jd = D.audioJitterMs ?? D.jitterMs;
  if (jr !== null && jd !== null) {
    const diff = Math.abs(jr - jd);
    if (diff >= JITTER_NOISE_MS && diff >= 0.5 * Math.min(jr, jd)) {
      const better = jr < jd ? 'relay' : 'direct';
      wins.push({ path: better, weight: 1, text: `${round(diff)} ms less jitter` });
    } else same.push('similar jitter');
  }

  const score = (/** @type {string} */ p) => wins.filter((w) => w.path === p).reduce((s, w) => s + w.weight, 0);
  const sr = score('relay');
  const sd = score('direct');
  if (sr === sd) {
    const text = wins.length
      ? `No clear winner: ${wins.map((w) => `${w.path}: ${w.text}`).join('; ')}.`
      : `No clear difference: both paths were the same within noise (${same.join(', ')}).`;
    return { better: 'tie', text, reasons: wins.map((w) => `${w.path}: ${w.text}`), withinNoise: same };
  }
  const better = sr > sd ? 'relay' : 'direct';
  const mine = wins.filter((w) => w.path === better).sort((x, y) => y.weight - x.weight);
  const theirs = wins.filter((w) => w.path !== better);
  let text = `${better === 'relay' ? 'Relay' : 'Direct'}: ${mine.map((w) => w.text).join(', ')}`;
  if (same.length) text += `; ${same.join(', ')}`;
  if (theirs.length) text += `; but ${theirs.map((w) => `${w.path}: ${w.text}`).join(', ')}`;
  return { better, text: `${text}.`, reasons: mine.map((w) => w.text), withinNoise: same };
}
