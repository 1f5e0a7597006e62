// @ts-check
/**
 * Who is speaking in a direct call. The server decides it for relayed media
 * (`speaker` messages, src/sfu/speaker.rs) but never sees a direct call's audio, so
 * there the page decides it the same way from the levels its own browser measures:
 * the other participant's from the received audio (`getSynchronizationSources`, the
 * RFC 6464 level of the latest packet), its own from its microphone (`media-source`
 * statistics of the audio sender).
 *
 * `SpeakerDetector` is DOM-free and takes the time as an input (tests/web drive it on
 * a fake clock); it mirrors src/sfu/speaker.rs `Detector`, with the same constants,
 * so a call highlights the same way on either path. `DirectSpeaking` polls a session.
 */

/** How often levels are read (ms). */
export const TICK_MS = 100;
/** Loudness (dB above -127 dBov) a voice's meter must reach to count as speaking. */
export const SPEAKING_LOUDNESS = 72;
/** How fast a voice's meter falls when it is quieter (dB a second). */
export const RELEASE_DB_PER_S = 25;
/** Time constant of the moving average that compares voices (ms). */
export const RECENT_TAU_MS = 300;
/** How much louder another voice must be to take the floor (dB). */
export const SWITCH_MARGIN_DB = 6;
/** How long it must stay that much louder (ms). */
export const SWITCH_HOLD_MS = 600;

/**
 * Loudness (127 + dBov, 0 for silence) of a WebRTC `audioLevel` (linear, 0..1, 1
 * being 0 dBov).
 * @param {number} audioLevel
 */
export function loudness(audioLevel) {
  if (!(audioLevel > 0)) return 0;
  const dbov = Math.max(-127, Math.min(0, 20 * Math.log10(audioLevel)));
  return 127 + dbov;
}

export class SpeakerDetector {
  constructor() {
    /** @type {{id: number, meter: number, recent: number}[]} */
    this.voices = [];
    /** @type {number | null} */
    this.speaker = null;
    /** @type {{id: number, since: number} | null} a voice louder than the speaker */
    this.challenger = null;
    /** @type {number | null} */
    this.lastTick = null;
  }

  /**
   * A tick at `now` (ms) with each participant's loudest level since the last one
   * (`null`: nothing heard). Returns true when the speaker changed.
   * @param {number} now
   * @param {Iterable<[number, number | null]>} levels
   */
  tick(now, levels) {
    const dt = (this.lastTick === null ? TICK_MS : Math.max(0, now - this.lastTick)) / 1000;
    this.lastTick = now;
    const fall = RELEASE_DB_PER_S * dt;
    const alpha = Math.min(1, (dt * 1000) / RECENT_TAU_MS);
    /** @type {Map<number, number>} */
    const heard = new Map();
    for (const [id, level] of levels) {
      if (level === null) continue;
      heard.set(id, Math.max(heard.get(id) ?? 0, level));
    }
    for (const v of this.voices) {
      const level = heard.get(v.id) ?? 0;
      heard.delete(v.id);
      v.meter = Math.max(0, v.meter - fall, level);
      v.recent += alpha * (level - v.recent);
    }
    for (const [id, level] of heard) this.voices.push({ id, meter: level, recent: alpha * level });
    this.voices = this.voices.filter((v) => v.meter > 0 || v.recent >= 1 || v.id === this.speaker);
    return this.decide(now);
  }

  /** Forgets everything: nobody speaks. */
  reset() {
    this.voices = [];
    this.speaker = null;
    this.challenger = null;
    this.lastTick = null;
  }

  /** @param {number} now */
  decide(now) {
    const speaking = this.voices.filter((v) => v.meter >= SPEAKING_LOUDNESS);
    // The loudest voice now; on a tie the speaker keeps the floor.
    let loudest = null;
    for (const v of speaking) {
      if (!loudest || v.recent > loudest.recent || (v.recent === loudest.recent && v.id === this.speaker)) loudest = v;
    }
    const current = this.voices.find((v) => v.id === this.speaker);
    /** @type {number | null} */
    let next;
    if (!loudest) next = null;
    else if (loudest.id === this.speaker) next = this.speaker;
    else if (this.speaker === null || !current || current.meter < SPEAKING_LOUDNESS) next = loudest.id;
    else if (loudest.recent < current.recent + SWITCH_MARGIN_DB) {
      this.challenger = null;
      next = this.speaker;
    } else if (this.challenger && this.challenger.id === loudest.id) {
      next = now - this.challenger.since >= SWITCH_HOLD_MS ? loudest.id : this.speaker;
    } else {
      this.challenger = { id: loudest.id, since: now };
      next = this.speaker;
    }
    if (next === this.speaker) {
      if (next === null || loudest?.id === next) this.challenger = null;
      return false;
    }
    this.speaker = next;
    this.challenger = null;
    return true;
  }
}

/**
 * Runs a `SpeakerDetector` on a session's direct connection while the session
 * receives on the direct path, and hands its answer to `session.setSpeaker`.
 */
export class DirectSpeaking {
  /**
   * @param {{path: string | null, id: number, micOn: boolean, onlyPeer: number | null,
   *          direct: {pc: RTCPeerConnection} | null, setSpeaker: (id: number | null) => void}} session
   */
  constructor(session) {
    this.session = session;
    this.detector = new SpeakerDetector();
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
    /** The latest packet time seen per audio source, to tell a new level from an old one. */
    /** @type {Map<number, number>} */
    this.seen = new Map();
    this.busy = false;
  }

  /** Starts polling (idempotent). */
  start() {
    if (this.timer === undefined) this.timer = setInterval(() => this.poll(), TICK_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = undefined;
    this.detector.reset();
    this.seen.clear();
  }

  /** Whether the page decides the speaker now (the session receives directly). */
  get active() {
    return this.session.path === 'direct' && !!this.session.direct;
  }

  async poll() {
    if (!this.active || this.busy) return;
    const s = this.session;
    const pc = /** @type {RTCPeerConnection} */ (s.direct?.pc);
    this.busy = true;
    try {
      /** @type {[number, number | null][]} */
      const levels = [];
      const peer = s.onlyPeer;
      if (peer !== null) levels.push([peer, this.remoteLevel(pc)]);
      if (s.id) levels.push([s.id, s.micOn ? await localLevel(pc) : 0]);
      if (!this.active) return;
      if (this.detector.tick(performance.now(), levels)) s.setSpeaker(this.detector.speaker);
    } catch {
      // A connection closing under us: the next tick sees it.
    } finally {
      this.busy = false;
    }
  }

  /**
   * The loudest new level among the received audio sources (null: no new packet).
   * @param {RTCPeerConnection} pc
   */
  remoteLevel(pc) {
    /** @type {number | null} */
    let level = null;
    for (const r of pc.getReceivers()) {
      if (r.track?.kind !== 'audio') continue;
      for (const src of r.getSynchronizationSources()) {
        if (this.seen.get(src.source) === src.timestamp) continue;
        this.seen.set(src.source, src.timestamp);
        level = Math.max(level ?? 0, loudness(src.audioLevel ?? 0));
      }
    }
    return level;
  }
}

/**
 * This side's microphone level, from the audio sender's `media-source` statistics
 * (null where the browser does not report it).
 * @param {RTCPeerConnection} pc
 */
async function localLevel(pc) {
  const sender = pc.getSenders().find((x) => x.track?.kind === 'audio');
  if (!sender) return null;
  const report = await sender.getStats();
  for (const st of report.values()) {
    if (st.type === 'media-source' && st.kind === 'audio' && typeof st.audioLevel === 'number') {
      return loudness(st.audioLevel);
    }
  }
  return null;
}
