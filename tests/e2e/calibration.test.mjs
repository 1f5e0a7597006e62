// The comparison tells the truth: two Chromium pages in three namespaces (server, two
// clients with a cable of their own for the direct path), where `tc netem` gives the
// direct path and client 1's relayed leg known, different conditions. A comparison
// run must report each path's round trip, loss and jitter within the tolerances of
// docs/comparison.md, the server's figures for the leg must agree with the browser's,
// and the verdict must name the path netem made better; with the conditions swapped,
// the verdict swaps. A freeze just before a run is not counted in it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, canUseNetns, isolatedClients, sessionState } from './lib.mjs';

const skip = canUseNetns() ? false : 'needs root to create network namespaces';

/** The bad conditions and the good ones (netem, the same on both ends of a link). */
const BAD = { spec: 'delay 20ms 5ms loss 3%', rttMs: 40, lossPct: 3, jitterMs: 10 / 3 };
const GOOD = { spec: 'delay 5ms', rttMs: 10, lossPct: 0, jitterMs: 0 };
/** What the measurement adds on a clean link here (ms): its floor. */
const RTT_FLOOR_MS = 3;
const SECONDS = 8;

let net;
let server;
let b1;
let b2;

before(async () => {
  if (skip) return;
  net = isolatedClients({ link: true });
  server = await startServer([], { netns: net.srv, ip: net.serverIp });
  b1 = await launchBrowser([], { netns: net.c1 });
  b2 = await launchBrowser([], { netns: net.c2 });
});

after(async () => {
  await b1?.close();
  await b2?.close();
  await server?.stop();
  net?.remove();
});

/** Cumulative freezes of the video the page receives on its active path. */
function freezes(page) {
  return page.evaluate(async () => {
    const pc = /** @type {any} */ (window).lanrelay.session.pc;
    let n = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.freezeCount || 0;
    });
    return n;
  });
}

/** Runs a comparison on page `a` (relay, then direct) and returns its report. */
async function compare(a) {
  await a.evaluate(() => delete (/** @type {any} */ (window).lanrelay.report));
  await a.fill('#compare .secs', String(SECONDS));
  await a.click('#compare .start-run');
  return waitFor(() => a.evaluate(() => /** @type {any} */ (window).lanrelay.report), 60000, 'comparison report');
}

/**
 * Checks one path's figures against what netem imposes on it.
 * @param {string} label
 * @param {any} s the path's summary
 * @param {typeof BAD} want
 */
function calibrated(label, s, want) {
  const near = (v, x, tol, what) => assert.ok(v !== null && Math.abs(v - x) <= tol, `${label}: ${what} ${v}, want ${x} ± ${tol}`);
  near(s.rttMs, want.rttMs, 5 + RTT_FLOOR_MS, 'round trip (ms)');
  near(s.lossInPct, want.lossPct, 1.5, 'loss in (%)');
  if (want.jitterMs > 0) {
    const j = s.audioJitterMs;
    assert.ok(j !== null && j >= want.jitterMs / 2 && j <= want.jitterMs * 2, `${label}: audio jitter ${j} ms, want ${want.jitterMs.toFixed(1)} ms within a factor of two`);
  }
  assert.ok(s.width > 0 && s.fps > 5, `${label}: video ${s.width} @ ${s.fps}`);
}

test('the comparison matches netem, names the better path, and swaps with the conditions', { skip }, async () => {
  net.netem('relay1', BAD.spec);
  net.netem('direct', GOOD.spec);
  const a = await newPage(b1);
  const b = await newPage(b2);
  let failed = true;
  try {
    await gotoRetry(a, `${server.url}?room=calib&name=A&autojoin=1&mode=auto`);
    await gotoRetry(b, `${server.url}?room=calib&name=B&autojoin=1&mode=auto`);
    await waitFor(async () => {
      const s = await mediaStats(a);
      return s?.path === 'direct' && s.video.framesDecoded > 30;
    }, 30000, 'A receives on the direct path');
    await a.click('#stats');

    // A freeze just before the run, on the path that is measured second: a second
    // with nothing on the clients' cable.
    const before = await freezes(a);
    net.netem('direct', 'loss 100%');
    await new Promise((r) => setTimeout(r, 1000));
    net.netem('direct', GOOD.spec);
    await waitFor(async () => (await freezes(a)) > before, 8000, 'a freeze counted by the browser');

    const one = await compare(a);
    const r1 = one.paths.relay.summary;
    const d1 = one.paths.direct.summary;
    console.log('run 1 (relay bad):', JSON.stringify({ verdict: one.verdict.text, relay: r1, direct: d1, server: one.paths.relay.server.summary }));
    assert.equal(d1.freezes, 0, 'the freeze before the run is not in the direct window');
    assert.equal(d1.frozenMs, 0);
    calibrated('relay (bad)', r1, BAD);
    calibrated('direct (good)', d1, GOOD);
    const srv = one.paths.relay.server.summary;
    assert.ok(Math.abs(srv.rttMs - r1.rttMs) <= 5 + RTT_FLOOR_MS, `server rtt ${srv.rttMs} vs browser ${r1.rttMs}`);
    assert.ok(Math.abs(srv.upLossPct - BAD.lossPct) <= 1.5, `server up loss ${srv.upLossPct} %`);
    const sj = srv.upAudioJitterMs;
    assert.ok(sj !== null && sj >= BAD.jitterMs / 2 && sj <= BAD.jitterMs * 2, `server up audio jitter ${sj} ms`);
    assert.ok(srv.upJitterMs !== null && srv.upJitterMs < 50, `server up video jitter ${srv.upJitterMs} ms is in ms`);
    assert.equal(one.verdict.better, 'direct', one.verdict.text);
    assert.match(one.verdict.text, /^Direct: /);

    // The server keeps the room's latest report for anyone who may see the room.
    const kept = await a.evaluate(async () => (await fetch('/api/rooms/calib/comparison')).json());
    assert.equal(kept.verdict.text, one.verdict.text);

    net.netem('relay1', GOOD.spec);
    net.netem('direct', BAD.spec);
    const two = await compare(a);
    const r2 = two.paths.relay.summary;
    const d2 = two.paths.direct.summary;
    console.log('run 2 (direct bad):', JSON.stringify({ verdict: two.verdict.text, relay: r2, direct: d2, server: two.paths.relay.server.summary }));
    calibrated('relay (good)', r2, GOOD);
    calibrated('direct (bad)', d2, BAD);
    assert.equal(two.verdict.better, 'relay', two.verdict.text);
    assert.match(two.verdict.text, /^Relay: /);
    assert.ok(await a.isVisible('#compare .verdict'));
    assert.equal((await a.textContent('#compare .verdict')).trim(), two.verdict.text);
    failed = false;
  } finally {
    if (failed) {
      console.log(JSON.stringify(await sessionState(a)));
      for (const p of [a, b]) console.log(p.logs.join('\n'));
      console.log(server.logs().slice(-4000));
    }
    net.netem('relay1', null);
    net.netem('direct', null);
    await a.context().close();
    await b.context().close();
  }
});
