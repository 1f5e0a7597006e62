// Firefox and Chromium in one call. Firefox ESR (Debian's `firefox-esr`, driven over
// WebDriver BiDi with puppeteer-core) and Chromium (Playwright) each run in their own
// network namespace: Firefox gathers no loopback candidates, so it needs a veth
// address to call anyone on one machine. The server namespace reaches both and
// forwards between them, so a direct path exists too.
// - relay mode: each decodes the other's video through the server;
// - auto mode: the call moves to the direct path, each decodes the other directly,
//   and the relay stops receiving Firefox's media (Firefox kept uploading about
//   2 Mbit/s to the relay after the switch, where Chromium stops); when the direct
//   path breaks, both decode each other through the relay again;
// - codecs: Chromium sends H.264, which Firefox without OpenH264 (as here, offline)
//   cannot decode: the server asks Chromium for VP8, and Firefox plays.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, launchBrowser, launchFirefox, newPage, mediaStats, waitFor, gotoRetry, sessionState,
  canUseNetns, isolatedClients,
} from './lib.mjs';

const skip = canUseNetns() ? false : 'needs root to create network namespaces';
let net;
let server;
/** @type {import('puppeteer-core').Browser | undefined} */
let firefox;
let chromium;

before(async () => {
  if (skip) return;
  net = isolatedClients({ routed: true });
  server = await startServer([], { netns: net.srv, ip: net.serverIp });
  firefox = await launchFirefox({ netns: net.c1 });
  chromium = await launchBrowser([], { netns: net.c2 });
});

after(async () => {
  await firefox?.close();
  await chromium?.close();
  await server?.stop();
  net?.remove();
});

/**
 * A Firefox tab (puppeteer) with its console collected for failure reports.
 * @param {string} url
 */
async function firefoxPage(url) {
  const context = await /** @type {import('puppeteer-core').Browser} */ (firefox).createBrowserContext();
  const page = await context.newPage();
  /** @type {string[]} */
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e}`));
  await page.goto(url);
  await page.waitForFunction(() => !!document.querySelector('main:not([hidden])'), { timeout: 10000 });
  return { page, logs, close: () => context.close() };
}

/**
 * Waits until `page` decodes the other's video on `path`, then checks that frames
 * keep coming and the video element has a size; returns the later stats.
 * @param {any} page a Playwright or puppeteer page
 * @param {string} label
 * @param {'relay' | 'direct'} path
 */
async function playing(page, label, path) {
  const first = await waitFor(async () => {
    const s = await mediaStats(page);
    return s && s.path === path && s.video.framesDecoded > 0 && s.videos.length === 1 && s.videos[0].width > 0 ? s : null;
  }, 30000, `${label}: remote video on the ${path} path`);
  await new Promise((r) => setTimeout(r, 2000));
  const later = await mediaStats(page);
  assert.ok(later.video.framesDecoded > first.video.framesDecoded + 10, `${label}: frames keep decoding (${first.video.framesDecoded} → ${later.video.framesDecoded})`);
  assert.ok(later.video.bytesReceived > first.video.bytesReceived, `${label}: video bytes keep arriving`);
  assert.ok(later.audio.packetsReceived > first.audio.packetsReceived, `${label}: audio arrives`);
  assert.ok(later.videos[0].width > 0 && later.videos[0].height > 0, `${label}: the remote video has a size`);
  return later;
}

/**
 * The server's view of room `room`, read from inside the Chromium page.
 * @param {import('playwright-core').Page} page
 * @param {string} room
 */
async function roomInfo(page, room) {
  return page.evaluate(async (room) => (await fetch(`/api/rooms/${room}`)).json(), room);
}

/**
 * Opens the room in `mode` in Firefox, then in Chromium, runs `check`, and reports
 * both pages' consoles and the server's log when it fails.
 * @param {string} room
 * @param {string} mode
 * @param {(ff: any, ch: import('playwright-core').Page) => Promise<void>} check
 * @param {string} [chromiumParams] more URL parameters for the Chromium page
 */
async function call(room, mode, check, chromiumParams = '') {
  const url = (/** @type {string} */ name) => `${server.url}?room=${room}&name=${name}&autojoin=1&mode=${mode}`;
  const ff = await firefoxPage(url('Firefox'));
  const ch = await newPage(chromium);
  let failed = true;
  try {
    await gotoRetry(ch, url('Chromium') + chromiumParams);
    await check(ff.page, ch);
    failed = false;
  } finally {
    if (failed) {
      console.log('firefox:', JSON.stringify(await sessionState(ff.page)), ff.logs.join('\n'));
      console.log('chromium:', JSON.stringify(await sessionState(ch)), ch.logs.join('\n'));
      console.log(server.logs().slice(-3000));
    }
    await ff.close();
    await ch.context().close();
  }
}

test('relay mode: Firefox and Chromium decode each other through the server', { skip }, async () => {
  await call('ff-relay', 'relay', async (ff, ch) => {
    const sf = await playing(ff, 'firefox', 'relay');
    const sc = await playing(ch, 'chromium', 'relay');
    for (const [s, label] of [[sf, 'firefox'], [sc, 'chromium']]) {
      assert.equal(s.remoteAddress, server.mediaAddr, `${label}: the selected pair ends at the server`);
      assert.equal(s.hasDirect, false, `${label}: no direct connection in relay mode`);
    }
    // The server hears each one's video (what the auto test expects to go quiet).
    /** @type {any} */
    let room;
    const ups = () => room.participants.map((/** @type {any} */ p) => `${p.name} ${Math.round(p.relay.upBps / 1000)} kbit/s`);
    try {
      await waitFor(async () => {
        room = await roomInfo(ch, 'ff-relay');
        return room.participants.every((/** @type {any} */ p) => p.relay?.upBps > 100000);
      }, 10000, 'the relay to receive video from both');
    } catch (e) {
      throw new Error(`${/** @type {Error} */ (e).message}: ${ups().join(', ')}`);
    }
    console.log(`relay: firefox decodes ${sf.videos[0].width}x${sf.videos[0].height} (${sf.video.codecs.join(',')}), chromium ${sc.videos[0].width}x${sc.videos[0].height} (${sc.video.codecs.join(',')}); relay upload ${ups().join(', ')}`);
  });
});

test('auto mode: the call goes direct, the relay stops receiving Firefox\'s media, and takes it again when direct breaks', { skip }, async () => {
  await call('ff-auto', 'auto', async (ff, ch) => {
    // The server's view, once a second: first the relay receives Firefox's video,
    // then both announce the direct path, then within a few seconds (a 1.5 s grace,
    // the server's 1 s window) the relay hears at most audio from either (Opus is
    // about 40 kbit/s; Firefox's video about 2 Mbit/s), and stays that way.
    const t0 = Date.now();
    let loud = 0;
    let direct = 0;
    let quietSince = 0;
    /** @type {string[]} */
    const seen = [];
    for (;;) {
      const room = await roomInfo(ch, 'ff-auto');
      const ps = room.participants.filter((/** @type {any} */ p) => p.relay);
      const now = Date.now() - t0;
      const line = ps.map((/** @type {any} */ p) => `${p.name} ${p.path} ${Math.round(p.relay.upBps / 1000)}`).join(', ');
      if (seen.at(-1)?.split(' ms: ')[1] !== line) seen.push(`${now} ms: ${line}`);
      const firefoxUp = ps.find((/** @type {any} */ p) => p.name === 'Firefox')?.relay.upBps ?? 0;
      if (!loud && firefoxUp > 100000) loud = now;
      if (!direct && ps.length === 2 && ps.every((/** @type {any} */ p) => p.path === 'direct')) direct = now;
      const quiet = loud && direct && ps.length === 2 && ps.every((/** @type {any} */ p) => p.relay.upBps < 100000);
      if (!quiet) quietSince = 0;
      else if (!quietSince) quietSince = now;
      if (quietSince && now - quietSince >= 2000) break;
      const deadline = direct ? direct + 8000 : 30000;
      assert.ok(now < deadline, `the relay upload (kbit/s) must drop below 100 kbit/s within 6 s of going direct (Firefox first heard above it at ${loud || 'never'} ms, both direct at ${direct || 'never'} ms):\n${seen.join('\n')}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`auto: the relay heard Firefox's video at ${loud} ms, both went direct at ${direct} ms, relay upload below 100 kbit/s at ${quietSince} ms (${quietSince - direct} ms after going direct): ${seen.at(-1)}`);
    // And the call plays directly, each receiving from the other browser itself.
    const sf = await playing(ff, 'firefox', 'direct');
    const sc = await playing(ch, 'chromium', 'direct');
    assert.equal(sf.remoteAddress, sc.localAddress, 'firefox receives from chromium itself');
    assert.equal(sc.remoteAddress, sf.localAddress, 'chromium receives from firefox itself');
    // The direct path breaks: both fall back to the relay, and the video each had
    // stopped sending there comes back.
    net.setForwarding(false);
    try {
      const cut = Date.now();
      const back = await playing(ch, 'chromium after the cut', 'relay');
      await playing(ff, 'firefox after the cut', 'relay');
      assert.equal(back.remoteAddress, server.mediaAddr);
      console.log(`auto: direct path cut; both decode relayed video again ${Date.now() - cut} ms later (2 s of it checking that frames keep coming)`);
    } finally {
      net.setForwarding(true);
    }
  });
});

test('codecs: Chromium sends H.264, which Firefox cannot decode: the server asks for VP8 and Firefox plays', { skip }, async () => {
  await call('ff-codec', 'relay', async (ff, ch) => {
    const firstId = await waitFor(async () => (await sessionState(ch))?.id || null, 10000, 'chromium joined');
    const sf = await playing(ff, 'firefox', 'relay').catch(async (e) => {
      console.log('room:', JSON.stringify(await roomInfo(ch, 'ff-codec')));
      console.log('firefox stats:', JSON.stringify(await mediaStats(ff)));
      throw e;
    });
    const room = await roomInfo(ch, 'ff-codec');
    const sender = room.participants.find((/** @type {any} */ p) => p.name === 'Chromium');
    const receiver = room.participants.find((/** @type {any} */ p) => p.name === 'Firefox');
    console.log(`codecs: Chromium sends ${sender.videoCodec}; Firefox decodes ${sf.video.codecs.join(',')}; Chromium's page: ${ch.logs.filter((l) => l.includes('switching')).join(' ')}`);
    assert.ok(ch.logs.some((l) => l.includes('switching video to VP8')), 'the server asked Chromium for VP8 (Firefox here cannot decode H.264)');
    assert.equal(sender.id, firstId, 'Chromium switched in place: the same participant, not a rejoin');
    assert.equal((await sessionState(ch)).id, firstId);
    assert.equal(sender.videoCodec, 'VP8', 'Chromium now sends VP8');
    assert.deepEqual(receiver.cannotDecode, [], 'nothing Firefox cannot decode');
    assert.equal(await ff.$eval('[data-peer] .note', (/** @type {HTMLElement} */ e) => e.hidden), true, 'no codec note left on the tile');
  }, '&vcodec=h264');
});
