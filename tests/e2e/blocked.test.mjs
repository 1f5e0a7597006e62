// The phone scenario: two browsers that can each reach the server but not each other
// (three network namespaces, no forwarding between the clients). Direct mode must say
// so clearly within its timeout; relay and auto must connect and play both ways, and
// auto must stay relayed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, canUseNetns, isolatedClients } from './lib.mjs';

const skip = canUseNetns() ? false : 'needs root to create network namespaces';
let net;
let server;
let b1;
let b2;

before(async () => {
  if (skip) return;
  net = isolatedClients();
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

async function pair(room, mode) {
  const a = await newPage(b1);
  const b = await newPage(b2, { width: 390, height: 844 });
  await gotoRetry(a, `${server.url}?room=${room}&name=Phone1&autojoin=1&mode=${mode}`);
  await gotoRetry(b, `${server.url}?room=${room}&name=Phone2&autojoin=1&mode=${mode}`);
  return [a, b];
}

async function relayedAndPlaying(page, label) {
  const first = await waitFor(async () => {
    const s = await mediaStats(page);
    return s && s.video.framesDecoded > 0 && s.videos.length === 1 && s.videos[0].width > 0 ? s : null;
  }, 25000, `${label}: remote video`);
  await new Promise((r) => setTimeout(r, 3000));
  const s = await mediaStats(page);
  assert.ok(s.video.framesDecoded > first.video.framesDecoded + 10, `${label}: frames keep decoding`);
  assert.ok(s.audio.packetsReceived > first.audio.packetsReceived, `${label}: audio arrives`);
  assert.equal(s.path, 'relay', `${label}: relayed`);
  assert.equal(s.remoteAddress, server.mediaAddr, `${label}: the server carries the call`);
  return s;
}

async function closeAll(pages, failed) {
  if (failed) {
    for (const p of pages) console.log(p.logs.join('\n'));
    console.log(server.logs().slice(-3000));
  }
  for (const p of pages) await p.context().close();
}

test('direct mode reports the failure and offers the relay', { skip }, async () => {
  const pages = await pair('b-direct', 'direct');
  const [a, b] = pages;
  let failed = true;
  try {
    const t0 = Date.now();
    // The default direct timeout is 10 s after the direct connection starts.
    await waitFor(async () => (await a.isVisible('#failed')) && (await b.isVisible('#failed')), 16000, 'failure shown on both');
    const took = Date.now() - t0;
    console.log(`direct mode: failure reported after ${took} ms`);
    for (const p of pages) {
      assert.equal(await p.textContent('#failed-title'), 'Direct connection failed');
      assert.match(await p.textContent('#failed-reason'), /cannot reach each other/);
      assert.ok(await p.isVisible('#to-relay'), 'offers to switch to relay');
    }
    // One tap on "Switch to relay" brings both onto the server.
    await a.click('#to-relay');
    await relayedAndPlaying(a, 'phone1');
    await relayedAndPlaying(b, 'phone2');
    assert.ok(await b.isHidden('#failed'), 'the other side follows to the relay');
    failed = false;
  } finally {
    await closeAll(pages, failed);
  }
});

test('relay mode connects where direct cannot', { skip }, async () => {
  const pages = await pair('b-relay', 'relay');
  let failed = true;
  try {
    await relayedAndPlaying(pages[0], 'phone1');
    await relayedAndPlaying(pages[1], 'phone2');
    failed = false;
  } finally {
    await closeAll(pages, failed);
  }
});

test('auto mode connects relayed and stays relayed', { skip }, async () => {
  const pages = await pair('b-auto', 'auto');
  const [a, b] = pages;
  let failed = true;
  try {
    await relayedAndPlaying(a, 'phone1');
    await relayedAndPlaying(b, 'phone2');
    // The background direct attempt fails; the call carries on through the server.
    const reason = await waitFor(async () => {
      const t = await a.textContent('#path-reason');
      return /direct connection failed/.test(t) ? t : null;
    }, 16000, 'the failed direct attempt explained');
    console.log(`auto mode, blocked network: "${reason}"`);
    await new Promise((r) => setTimeout(r, 3000));
    for (const [p, label] of [[a, 'phone1'], [b, 'phone2']]) {
      const s = await relayedAndPlaying(p, label);
      assert.ok(s.pathLog.every((e) => e.path === 'relay'), `${label}: never left the relay ${JSON.stringify(s.pathLog)}`);
    }
    failed = false;
  } finally {
    await closeAll(pages, failed);
  }
});
