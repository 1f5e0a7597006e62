// The three call modes in real browsers: relay, direct and auto, plus the comparison
// run. Everything runs inside a fresh network namespace with only loopback, so the
// direct path connects two browsers over 127.0.0.1 and nothing leaves the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, canUseNetns, loopbackNamespace } from './lib.mjs';

const skip = canUseNetns() ? false : 'needs root to create a network namespace';
let ns;
let server;
let browser;

before(async () => {
  if (skip) return;
  ns = loopbackNamespace('modes');
  server = await startServer([], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

/** Opens two pages of a room in `mode`. */
async function pair(room, mode, extra = '') {
  const a = await newPage(browser);
  const b = await newPage(browser);
  const t0 = Date.now();
  await gotoRetry(a, `${server.url}?room=${room}&name=A&autojoin=1&mode=${mode}${extra}`);
  await gotoRetry(b, `${server.url}?room=${room}&name=B&autojoin=1&mode=${mode}${extra}`);
  return { a, b, t0 };
}

/** Waits until the page decodes remote video on its active path; returns the stats. */
async function playing(page, label, want = (s) => true) {
  const first = await waitFor(async () => {
    const s = await mediaStats(page);
    return s && s.video.framesDecoded > 0 && s.videos.every((v) => v.width > 0) && want(s) ? s : null;
  }, 25000, `${label}: remote video`);
  await new Promise((r) => setTimeout(r, 3000));
  const later = await mediaStats(page);
  assert.ok(later.video.framesDecoded > first.video.framesDecoded + 10, `${label}: frames keep decoding`);
  assert.ok(later.audio.packetsReceived > first.audio.packetsReceived, `${label}: audio arrives`);
  return later;
}

/** The server's /api/rooms entry, fetched from inside the page (inside the namespace). */
async function roomInfo(page, room) {
  return page.evaluate(async (room) => (await fetch(`/api/rooms/${room}`)).json(), room);
}

async function close(...pages) {
  for (const p of pages) await p.context().close();
}

function dump(pages) {
  for (const p of pages) console.log(p.logs.join('\n'));
  console.log(server.logs().slice(-3000));
}

test('relay mode: media goes through the server', { skip }, async () => {
  const { a, b, t0 } = await pair('m-relay', 'relay');
  try {
    const sa = await playing(a, 'a');
    const sb = await playing(b, 'b');
    console.log(`relay: time to first frame ${sa.connectMs} ms (page load to connected ${Date.now() - t0} ms total)`);
    for (const s of [sa, sb]) {
      assert.equal(s.path, 'relay');
      assert.equal(s.remoteAddress, server.mediaAddr, 'selected pair ends at the server');
      assert.equal(s.hasDirect, false, 'no direct connection in relay mode');
    }
  } catch (e) {
    dump([a, b]);
    throw e;
  } finally {
    await close(a, b);
  }
});

test('direct mode: media goes browser to browser', { skip }, async () => {
  const { a, b } = await pair('m-direct', 'direct');
  try {
    const sa = await playing(a, 'a');
    const sb = await playing(b, 'b');
    for (const s of [sa, sb]) {
      assert.equal(s.path, 'direct');
      assert.equal(s.hasRelay, false, 'no server media connection in direct mode');
      assert.notEqual(s.remoteAddress, server.mediaAddr);
    }
    // Each one's selected pair ends at the other browser's own address.
    assert.equal(sa.remoteAddress, sb.localAddress);
    assert.equal(sb.remoteAddress, sa.localAddress);
    assert.match(await a.textContent('#status-text'), /direct/);
    const ttff = await a.evaluate(() => window.lanrelay.session.direct.firstFrameMs);
    console.log(`direct: time to first frame ${ttff} ms`);
    // The server carries no media for this room.
    const rooms = await roomInfo(a, 'm-direct');
    assert.equal(rooms.mode, 'direct');
    assert.ok(rooms.participants.every((p) => p.relayConnected === false && p.path === 'direct'), JSON.stringify(rooms));

    // Who speaks, though the server hears none of it: each page decides from its own
    // connection. A mutes; B's fake microphone beeps: both pages outline B.
    const idB = await b.evaluate(() => window.lanrelay.session.id);
    await a.click('#mic');
    const t0 = Date.now();
    await a.waitForFunction((id) => !!document.querySelector(`.tile[data-peer="${id}"]`)?.classList.contains('speaking'), idB, { polling: 50, timeout: 10000 });
    await b.waitForFunction(() => document.getElementById('self-tile')?.classList.contains('speaking'), null, { polling: 50, timeout: 10000 });
    console.log(`direct: speaker outlined on both pages after ${Date.now() - t0} ms`);
    const outlinedA = await a.evaluate(() => [...document.querySelectorAll('.tile.speaking')].map((t) => t.id || t.dataset.peer));
    assert.deepEqual(outlinedA, [String(idB)], 'the muted participant is not outlined');
  } catch (e) {
    dump([a, b]);
    throw e;
  } finally {
    await close(a, b);
  }
});

test('auto mode: starts relayed, then moves to the direct path', { skip }, async () => {
  const { a, b } = await pair('m-auto', 'auto');
  try {
    // First the call plays relayed...
    const relayed = await waitFor(async () => {
      const s = await mediaStats(a, 'relay');
      return s && s.video.framesDecoded > 0 ? Date.now() : null;
    }, 20000, 'relayed video first');
    const log = await waitFor(async () => {
      const s = await mediaStats(a);
      return s?.path === "direct" ? s.pathLog : null;
    }, 25000, 'switch to direct');
    const switched = Date.now();
    assert.equal(log[0].path, 'relay', 'the call started relayed');
    assert.equal(log[log.length - 1].path, 'direct');
    const relayTtff = await a.evaluate(() => window.lanrelay.session.relay.firstFrameMs);
    console.log(`auto: relayed first frame after ${relayTtff} ms; direct took over ${log[log.length - 1].at - log[0].at} ms after the relay connected (observed ${switched - relayed} ms after the first relayed frame)`);
    const sa = await playing(a, 'a', (s) => s.path === 'direct');
    const sb = await playing(b, 'b', (s) => s.path === 'direct');
    assert.equal(sa.remoteAddress, sb.localAddress);
    assert.match(await a.textContent('#status-text'), /direct/);
    assert.match(await a.textContent('#path-reason'), /direct path delivers media/);
    // The switch gave each remote tile a new stream; the play() it interrupted is no
    // blocked autoplay: no "Tap to play sound" while video and sound play.
    for (const [p, label] of [[a, 'a'], [b, 'b']]) {
      const refusals = p.logs.filter((l) => l.includes('play() refused'));
      console.log(`auto: ${label}: ${refusals.length} play() refusals during the switch: ${refusals.join('; ')}`);
      const prompts = await p.$$eval('.tile.remote', (ts) => ts.filter((t) => getComputedStyle(t, '::after').content !== 'none').length);
      assert.equal(prompts, 0, `${label}: no "Tap to play sound" prompt after the switch`);
    }
    // Once both receive directly, the relay stops carrying media from them.
    const rooms = await waitFor(async () => {
      const r = await roomInfo(a, 'm-auto');
      return r.participants.every((p) => p.path === 'direct' && p.relay.upBps < 50000) ? r : null;
    }, 10000, 'the relay upload to stop');
    console.log(`auto: relay upload once direct: ${rooms.participants.map((p) => Math.round(p.relay.upBps)).join(', ')} bit/s`);
  } catch (e) {
    dump([a, b]);
    throw e;
  } finally {
    await close(a, b);
  }
});

test('comparison run reports both paths from real stats', { skip }, async () => {
  const { a, b } = await pair('m-compare', 'auto');
  try {
    await waitFor(async () => (await mediaStats(a))?.path === 'direct', 25000, 'direct path');
    await a.click('#stats');
    await a.fill('#compare .secs', '4');
    await a.click('#compare .start-run');
    const report = await waitFor(() => a.evaluate(() => window.lanrelay.report), 40000, 'comparison report');
    assert.deepEqual(Object.keys(report.paths).sort(), ['direct', 'relay']);
    for (const [path, e] of Object.entries(report.paths)) {
      assert.ok(!e.error, `${path}: ${e.error}`);
      const s = e.summary;
      assert.ok(s.samples >= 3, `${path}: samples ${s.samples}`);
      assert.ok(s.inKbps > 50, `${path}: bitrate in ${s.inKbps}`);
      assert.ok(s.outKbps > 50, `${path}: bitrate out ${s.outKbps}`);
      assert.ok(s.rttMs !== null && s.rttMs >= 0 && s.rttMs < 200, `${path}: rtt ${s.rttMs}`);
      assert.ok(s.width > 0 && s.fps > 5, `${path}: video ${s.width} @ ${s.fps}`);
      assert.ok(e.samples.every((x) => x.path === path && x.active), `${path}: samples come from the measured path: ${JSON.stringify(e.samples.map((x) => [x.t, x.active]))} ${JSON.stringify(report.pathLog)} ${JSON.stringify(e.from)}`);
    }
    assert.match(report.paths.relay.summary.remote, new RegExp(server.mediaAddr.split(':')[1]));
    assert.doesNotMatch(report.paths.direct.summary.remote, new RegExp(`:${server.mediaAddr.split(':')[1]}$`));
    const srv = report.paths.relay.server.summary;
    assert.ok(srv.samples >= 3 && srv.upKbps > 50 && srv.downKbps > 50, JSON.stringify(srv));
    // The panel shows the table and offers JSON and CSV downloads.
    assert.ok(await a.isVisible('#compare .report-table'));
    const csv = await a.evaluate(async () => (await fetch(document.querySelector('#compare .dl-csv').href)).text());
    const lines = csv.trim().split('\n');
    assert.match(lines[0], /^t,path,active,rttMs/);
    assert.ok(lines.length >= 7, `csv rows: ${lines.length}`);
    console.log('comparison report summary:', JSON.stringify({
      relay: report.paths.relay.summary, direct: report.paths.direct.summary, server: srv,
    }));
    // Afterwards the call goes back to its automatic choice.
    await waitFor(async () => (await mediaStats(a))?.path === 'direct', 10000, 'back to direct');
  } catch (e) {
    dump([a, b]);
    throw e;
  } finally {
    await close(a, b);
  }
});

test('auto mode: three participants stay relayed; when one leaves the two go direct', { skip }, async () => {
  const pages = [];
  for (const name of ['X', 'Y', 'Z']) {
    const p = await newPage(browser);
    await gotoRetry(p, `${server.url}?room=m-trio&name=${name}&autojoin=1&mode=auto`);
    pages.push(p);
  }
  const [x, y, z] = pages;
  try {
    for (const [p, label] of [[x, 'x'], [y, 'y'], [z, 'z']]) {
      const s = await playing(p, label, (s) => s.videos.length === 2);
      assert.equal(s.path, 'relay', `${label}: relayed with three`);
      assert.equal(s.hasDirect, false, `${label}: no direct connection with three`);
    }
    await z.click('#hangup');
    for (const [p, label] of [[x, 'x'], [y, 'y']]) {
      const s = await playing(p, label, (s) => s.path === 'direct' && s.videos.length === 1);
      assert.equal(s.path, 'direct');
    }
  } catch (e) {
    dump(pages);
    throw e;
  } finally {
    await close(...pages);
  }
});
