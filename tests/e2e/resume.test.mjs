// A phone whose network changes stays in its call. Two browsers in their own network
// namespaces call each other through the server (relay mode):
// - the first one's address changes mid-call (its address is deleted and another
//   added, as when a phone moves to another access point): the page resumes its
//   signaling on a new WebSocket and restarts ICE on the same connection; video plays
//   again within 3 s, the participant keeps its id, and the other page never hears
//   that it left;
// - the first one's WebSocket is killed mid-call (its TCP connection aborted with
//   `ss -K`): media keeps playing throughout, and the page resumes the same
//   participant on a new WebSocket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, sessionState, canUseNetns, isolatedClients } from './lib.mjs';

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

/**
 * Records on the page every server message's type (and each `peerLeft` whole), and
 * the participant's ids, for what the test asserts afterwards.
 * @param {import('playwright-core').Page} page
 */
async function record(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    const s = w.lanrelay.session;
    w.seen = { types: [], left: [], ids: [s.id], events: [] };
    const t0 = performance.now();
    const note = (/** @type {string} */ e) => w.seen.events.push(`${Math.round(performance.now() - t0)} ${e}`);
    const pc = s.relay.pc;
    pc.addEventListener('iceconnectionstatechange', () => note(`ice ${pc.iceConnectionState}`));
    pc.addEventListener('connectionstatechange', () => note(`pc ${pc.connectionState}`));
    pc.addEventListener('icegatheringstatechange', () => note(`gathering ${pc.iceGatheringState}`));
    pc.addEventListener('icecandidate', (/** @type {any} */ e) => note(`candidate ${e.candidate?.candidate || 'end'}`));
    pc.addEventListener('signalingstatechange', () => note(`signaling ${pc.signalingState}`));
    s.addEventListener('state', (/** @type {any} */ ev) => note(`state ${ev.detail.state} ${ev.detail.reason || ''}`));
    w.seen.mark = () => note('mark');
    const handle = s.onMessage.bind(s);
    s.relay.addEventListener('silent', (/** @type {any} */ ev) => note(`silent ${ev.detail.silent}`));
    s.onMessage = (/** @type {any} */ m) => {
      if (m.type !== 'stats') note(`got ${m.type}`);
      w.seen.types.push(m.type);
      if (m.type === 'peerLeft') w.seen.left.push(m);
      if (m.type === 'joined') w.seen.ids.push(m.id);
      handle(m);
    };
  });
}

/** @param {import('playwright-core').Page} page */
const seen = (page) => page.evaluate(() => /** @type {any} */ (window).seen);

/**
 * When `page` decodes video again after an outage that began around `since`: frames
 * are sampled every 100 ms; the answer is the first sample whose frames rose after a
 * pause of at least 300 ms, once 10 more frames have followed within a second.
 * @param {import('playwright-core').Page} page
 * @param {number} since Date.now() of the change
 * @param {number} ms
 * @param {string} what
 */
async function playsAgain(page, since, ms, what) {
  const frames = () => page.evaluate(async () => {
    const pc = /** @type {any} */ (window).lanrelay.session.relay?.pc;
    let n = 0;
    (await pc.getStats()).forEach((/** @type {any} */ r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') n += r.framesDecoded || 0;
    });
    return n;
  });
  let last = await frames();
  let lastRise = since;
  /** @type {{at: number, frames: number} | null} */
  let back = null;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    const n = await frames();
    const now = Date.now();
    if (n > last) {
      if (!back && now - lastRise >= 300 + 100) back = { at: now, frames: n };
      lastRise = now;
    }
    last = n;
    if (back && n >= back.frames + 10) return back.at - since;
    if (back && now - back.at > 1000) back = null;
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/**
 * The longest time, in ms, that `page`'s decoded video frames did not rise over the
 * next `ms` (sampled every 100 ms).
 * @param {import('playwright-core').Page} page
 * @param {number} ms
 */
async function longestPause(page, ms) {
  const frames = () => mediaStats(page).then((s) => s?.video.framesDecoded ?? 0);
  let last = await frames();
  let lastRise = Date.now();
  let longest = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    const n = await frames();
    const now = Date.now();
    if (n > last) lastRise = now;
    longest = Math.max(longest, now - lastRise);
    last = n;
  }
  return longest;
}

/** @param {string[]} args */
const ipIn = (ns, args) => execFileSync('ip', ['-n', ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });

async function call(room) {
  const a = await newPage(b1);
  const b = await newPage(b2);
  await gotoRetry(a, `${server.url}?room=${room}&name=Phone&autojoin=1&mode=relay`);
  await gotoRetry(b, `${server.url}?room=${room}&name=Laptop&autojoin=1&mode=relay`);
  for (const [p, label] of [[a, 'the phone'], [b, 'the laptop']]) {
    await waitFor(async () => {
      const s = await mediaStats(p);
      return s?.path === 'relay' && s.video.framesDecoded > 30 && s.videos[0]?.width > 0;
    }, 30000, `${label} plays the other's video`);
  }
  await record(a);
  await record(b);
  return { a, b };
}

async function report(pages) {
  for (const p of pages) {
    const s = await seen(p).catch(() => null);
    console.log(JSON.stringify(await sessionState(p)), JSON.stringify(s?.types), p.logs.join('\n'));
    // What the page went through, in ms from the change.
    console.log((s?.events || []).join('\n'));
  }
  console.log(server.logs().split('\n').filter((l) => !/bandwidth estimate/.test(l)).slice(-60).join('\n'));
}

test('a new address mid-call: ICE restarts on the same connection, nobody sees a leave', { skip }, async () => {
  const { a, b } = await call('move');
  const id = await a.evaluate(() => /** @type {any} */ (window).lanrelay.session.id);
  let failed = true;
  try {
    const before = await mediaStats(a);
    assert.equal(before.localAddress.split(':')[0], '10.201.1.2');
    let saidNetworkChanged = false;
    const watch = setInterval(async () => {
      const t = await a.textContent('#status-text').catch(() => '');
      if (/^Reconnecting: network changed/.test(t || '')) saidNetworkChanged = true;
    }, 100);

    // The phone moves: its address goes, another comes (and the route with it).
    await a.evaluate(() => /** @type {any} */ (window).seen.mark());
    const changed = Date.now();
    ipIn(net.c1, ['addr', 'del', '10.201.1.2/24', 'dev', 'c1-eth']);
    ipIn(net.c1, ['addr', 'add', '10.201.1.3/24', 'dev', 'c1-eth']);
    ipIn(net.c1, ['route', 'replace', '10.201.0.1/32', 'via', '10.201.1.1']);

    const [phoneMs, laptopMs] = await Promise.all([
      playsAgain(a, changed, 15000, 'the phone plays video again'),
      playsAgain(b, changed, 15000, 'the laptop plays the phone\'s video again'),
    ]);
    const back = await mediaStats(a);
    clearInterval(watch);
    console.log(`address changed: the phone plays again after ${phoneMs} ms, the laptop after ${laptopMs} ms; pair ${back.localAddress} -> ${back.remoteAddress}`);
    assert.equal(back.localAddress.split(':')[0], '10.201.1.3', 'the media goes from the new address');
    assert.equal(back.remoteAddress, server.mediaAddr, 'still relayed');
    assert.ok(phoneMs <= 3000, `the phone's video plays again within 3 s (${phoneMs} ms)`);
    assert.ok(laptopMs <= 3000, `the laptop plays the phone's video again within 3 s (${laptopMs} ms)`);
    assert.ok(saidNetworkChanged, 'the page said "Reconnecting: network changed"');

    const sa = await seen(a);
    const sb = await seen(b);
    assert.deepEqual(sb.left, [], 'the laptop never heard the phone leave');
    assert.ok(sa.ids.every((/** @type {number} */ x) => x === id), `the phone kept its id ${id}: ${sa.ids}`);
    assert.equal(await a.evaluate(() => /** @type {any} */ (window).lanrelay.session.state), 'connected');
    failed = false;
  } finally {
    if (failed) await report([a, b]);
    // Back to the address the other test expects.
    try { ipIn(net.c1, ['addr', 'del', '10.201.1.3/24', 'dev', 'c1-eth']); } catch {}
    try { ipIn(net.c1, ['addr', 'add', '10.201.1.2/24', 'dev', 'c1-eth']); } catch {}
    try { ipIn(net.c1, ['route', 'replace', '10.201.0.1/32', 'via', '10.201.1.1']); } catch {}
    await a.context().close();
    await b.context().close();
  }
});

test('the WebSocket killed mid-call: media keeps playing, the page resumes the same participant', { skip }, async () => {
  const { a, b } = await call('socket');
  const id = await a.evaluate(() => /** @type {any} */ (window).lanrelay.session.id);
  let failed = true;
  try {
    await a.evaluate(() => { /** @type {any} */ (window).lanrelay.session.sig.ws.killed = true; });
    execFileSync('ip', ['netns', 'exec', net.c1, 'ss', '-K', 'dst', net.serverIp, 'dport', '=', `:${server.port}`], { stdio: 'ignore' });
    const killed = Date.now();
    // Video decodes on both pages throughout: the longest pause in their frames
    // over the 3 s after the kill, while the phone gets a new WebSocket.
    const [pauseA, pauseB, resumedMs] = await Promise.all([
      longestPause(a, 3000),
      longestPause(b, 3000),
      waitFor(() => a.evaluate(() => {
        const s = /** @type {any} */ (window).lanrelay.session;
        return s.sig?.ws && !s.sig.ws.killed && s.sig.ws.readyState === 1 && !s.resuming && s.state === 'connected';
      }), 10000, 'the phone on a new WebSocket').then(() => Date.now() - killed),
    ]);
    console.log(`WebSocket killed: the phone was on a new one after ${resumedMs} ms; longest pause in decoded frames ${pauseA} ms (phone), ${pauseB} ms (laptop)`);
    assert.ok(pauseA < 500, `the phone kept playing (a pause of ${pauseA} ms)`);
    assert.ok(pauseB < 500, `the laptop kept playing (a pause of ${pauseB} ms)`);

    const seenA = await seen(a);
    const seenB = await seen(b);
    assert.ok(seenA.ids.length >= 2, `the phone got a fresh joined: ${seenA.types}`);
    assert.ok(seenA.ids.every((/** @type {number} */ x) => x === id), `the same participant ${id}: ${seenA.ids}`);
    assert.deepEqual(seenB.left, [], 'the laptop never heard the phone leave');
    assert.ok(!seenB.types.includes('peerJoined'), 'nor join again');

    // The signaling works on the new connection: the camera state reaches the laptop.
    await a.evaluate(() => /** @type {any} */ (window).lanrelay.session.setCamera(false));
    await waitFor(() => b.evaluate((id) => /** @type {any} */ (window).lanrelay.session.peers.get(id)?.video === false, id), 5000, 'the laptop sees the camera off');
    failed = false;
  } finally {
    if (failed) await report([a, b]);
    await a.context().close();
    await b.context().close();
  }
});
