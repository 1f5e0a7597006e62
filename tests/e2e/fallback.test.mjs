// Auto mode when the direct path breaks mid-call: two browsers in their own network
// namespaces first reach each other (the server namespace forwards between them), so
// the call moves to the direct path; then forwarding stops, the direct path breaks,
// and the call must fall back to the relay and keep playing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, sessionState, canUseNetns, isolatedClients } from './lib.mjs';

const skip = canUseNetns() ? false : 'needs root to create network namespaces';
let net;
let server;
let b1;
let b2;

before(async () => {
  if (skip) return;
  net = isolatedClients({ routed: true });
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

test('auto mode falls back to the relay when the direct path breaks', { skip }, async () => {
  const a = await newPage(b1);
  const b = await newPage(b2);
  let failed = true;
  try {
    await gotoRetry(a, `${server.url}?room=fb&name=One&autojoin=1&mode=auto`);
    await gotoRetry(b, `${server.url}?room=fb&name=Two&autojoin=1&mode=auto`);
    for (const p of [a, b]) {
      await waitFor(async () => (await mediaStats(p))?.path === 'direct', 40000, 'the call moves to direct');
    }
    const direct = await mediaStats(a);
    assert.equal(direct.remoteAddress.split(':')[0], '10.201.2.2', 'direct pair ends at the other browser');

    net.setForwarding(false);
    const cut = Date.now();
    const back = await waitFor(async () => {
      const s = await mediaStats(a);
      return s?.path === 'relay' && s.videos[0]?.width > 0 ? s : null;
    }, 15000, 'fallback to relay');
    const switched = Date.now() - cut;
    const before = back.video.framesDecoded;
    const playing = await waitFor(async () => {
      const s = await mediaStats(a);
      return s.video.framesDecoded > before + 15 ? s : null;
    }, 10000, 'relayed video playing after the fallback');
    const resumed = Date.now() - cut;
    console.log(`direct path cut: back on the relay after ${switched} ms, video flowing again after ${resumed} ms; reason: "${await a.textContent('#path-reason')}"`);
    assert.equal(playing.remoteAddress, server.mediaAddr);
    assert.match(await a.textContent('#path-reason'), /direct path broke/);
    const sb = await waitFor(async () => {
      const s = await mediaStats(b);
      return s?.path === 'relay' && s.video.framesDecoded > 0 ? s : null;
    }, 10000, 'the other side on the relay too');
    assert.equal(sb.remoteAddress, server.mediaAddr);
    failed = false;
  } finally {
    if (failed) {
      for (const p of [a, b]) console.log(JSON.stringify(await sessionState(p)), p.logs.join('\n'));
      console.log(server.logs().slice(-3000));
    }
    await a.context().close();
    await b.context().close();
  }
});
