// Networks that pass HTTPS but block UDP: two browsers whose namespaces drop every
// UDP datagram they send still get a call through the server, over ICE-TCP on the
// HTTPS port, in relay and in auto mode; the server counts the TCP legs.
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
  net.blockUdp();
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

async function overTcp(page, label) {
  const t0 = Date.now();
  const first = await waitFor(async () => {
    const s = await mediaStats(page);
    return s && s.video.framesDecoded > 0 ? s : null;
  }, 30000, `${label}: remote video over TCP`);
  console.log(`${label}: first frame ${Date.now() - t0} ms after the check began (connect ${first.connectMs} ms)`);
  await new Promise((r) => setTimeout(r, 2000));
  const s = await mediaStats(page);
  assert.ok(s.video.framesDecoded > first.video.framesDecoded + 10, `${label}: frames keep decoding`);
  assert.ok(s.audio.packetsReceived > first.audio.packetsReceived, `${label}: audio arrives`);
  assert.equal(s.protocol, 'tcp', `${label}: the selected candidate pair is TCP`);
  assert.equal(s.remoteAddress, `${net.serverIp}:${server.port}`, `${label}: the HTTPS port carries the media`);
  assert.equal(s.path, 'relay', `${label}: relayed`);
  return s;
}

async function call(room, mode) {
  const a = await newPage(b1);
  const b = await newPage(b2);
  let failed = true;
  try {
    await gotoRetry(a, `${server.url}?room=${room}&name=A&autojoin=1&mode=${mode}`);
    await gotoRetry(b, `${server.url}?room=${room}&name=B&autojoin=1&mode=${mode}`);
    await overTcp(a, `${mode} A`);
    await overTcp(b, `${mode} B`);
    // The server says which transport each relayed leg uses.
    const metrics = await a.evaluate(async () => (await fetch('/metrics')).text());
    assert.match(metrics, /\nlanrelay_relay_tcp_participants 2\n/, 'both legs counted as TCP');
    assert.match(metrics, /\nlanrelay_tcp_media_connections [1-9]/);
    failed = false;
  } finally {
    if (failed) {
      for (const p of [a, b]) console.log(p.logs.join('\n'));
      console.log(server.logs().slice(-3000));
    }
    await a.context().close();
    await b.context().close();
  }
}

test('relay mode: UDP blocked, the call goes over TCP', { skip }, async () => {
  await call('tcp-relay', 'relay');
});

test('auto mode: UDP blocked, the call goes over TCP', { skip }, async () => {
  await call('tcp-auto', 'auto');
});
