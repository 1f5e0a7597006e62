// The page's own speaker detection for direct calls (web/speaking.js) decides as the
// server's does (src/sfu/speaker.rs): the same cases, on a fake clock.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpeakerDetector, DirectSpeaking, TICK_MS, SWITCH_HOLD_MS, loudness } from '../../web/speaking.js';

const SPEECH = 127 - 30;
const LOUD = 127 - 20;
const SILENT = 0;

/** Runs `ticks` ticks from clock `c`, each with `levels`; returns [tick, speaker] changes. */
function run(d, c, ticks, levels) {
  const changes = [];
  for (let i = 0; i < ticks; i++) {
    c.t += TICK_MS;
    if (d.tick(c.t, levels)) changes.push([i, d.speaker]);
  }
  return changes;
}

test('loudness from a WebRTC audioLevel', () => {
  assert.equal(loudness(1), 127);
  assert.equal(loudness(0), 0);
  assert.ok(Math.abs(loudness(10 ** (-30 / 20)) - 97) < 1e-9);
  assert.equal(loudness(1e-9), 0, 'below -127 dBov is silence');
});

test('the unmuted voice speaks at once, the muted one never', () => {
  const d = new SpeakerDetector();
  const c = { t: 0 };
  assert.deepEqual(run(d, c, 50, [[1, SILENT], [2, SPEECH]]), [[0, 2]]);
});

test('a beep every half second keeps the floor', () => {
  const d = new SpeakerDetector();
  const changes = [];
  for (let i = 0, t = 0; i < 100; i++) {
    t += TICK_MS;
    if (d.tick(t, [[7, i % 5 === 0 ? LOUD : SILENT]])) changes.push([i, d.speaker]);
  }
  assert.deepEqual(changes, [[0, 7]]);
});

test('a speaker who stops, or whose packets stop, is released within about a second', () => {
  const d = new SpeakerDetector();
  const c = { t: 0 };
  run(d, c, 10, [[1, SPEECH]]);
  const changes = run(d, c, 20, [[1, SILENT]]);
  assert.equal(changes.length, 1);
  assert.equal(changes[0][1], null);
  assert.ok(changes[0][0] >= 8 && changes[0][0] <= 12, `released after ${changes[0][0]} ticks`);
  run(d, c, 10, [[1, SPEECH]]);
  assert.equal(run(d, c, 20, [[1, null]]).length, 1);
});

test('a slightly louder voice does not take the floor; a much louder one does, after the hold', () => {
  const d = new SpeakerDetector();
  const c = { t: 0 };
  run(d, c, 5, [[1, SPEECH]]);
  assert.deepEqual(run(d, c, 50, [[1, SPEECH], [2, SPEECH + 3]]), []);
  assert.deepEqual(run(d, c, 1, [[1, SPEECH], [2, 127]]), [], 'a cough');
  assert.deepEqual(run(d, c, 30, [[1, SPEECH], [2, SILENT]]), []);
  const changes = run(d, c, 20, [[1, SPEECH], [2, LOUD + 10]]);
  assert.equal(changes.length, 1);
  const hold = SWITCH_HOLD_MS / TICK_MS;
  assert.equal(changes[0][1], 2);
  assert.ok(changes[0][0] >= hold && changes[0][0] <= hold + 6, JSON.stringify(changes));
});

test('the session decides on the direct path only, from what its connection measures', async () => {
  // A stand-in for the direct RTCPeerConnection: the other side's received level and
  // this side's microphone level, as Chromium reports them.
  let remote = 10 ** (-30 / 20);
  let ts = 0;
  const pc = {
    getReceivers: () => [{ track: { kind: 'audio' }, getSynchronizationSources: () => [{ source: 1, timestamp: ++ts, audioLevel: remote }] }],
    getSenders: () => [{ track: { kind: 'audio' }, getStats: async () => new Map([['m', { type: 'media-source', kind: 'audio', audioLevel: 0 }]]) }],
  };
  const said = [];
  const session = { path: 'relay', id: 5, micOn: true, onlyPeer: 9, direct: { pc }, setSpeaker: (id) => said.push(id) };
  const ds = new DirectSpeaking(session);
  await ds.poll();
  assert.deepEqual(said, [], 'on the relay the server decides');
  session.path = 'direct';
  await ds.poll();
  assert.deepEqual(said, [9], 'the other participant speaks');
  remote = 0;
  for (let i = 0; i < 15; i++) {
    ds.detector.lastTick -= TICK_MS; // time passes between polls
    await ds.poll();
  }
  assert.deepEqual(said, [9, null], 'and falls silent');
});
