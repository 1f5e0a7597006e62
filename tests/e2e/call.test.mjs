// Browser end-to-end: real Chromium pages with fake camera and microphone call each
// other through the real HTTPS page and the server's media port (relay mode), inside a
// fresh network namespace with only loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, repoRoot, canUseNetns, loopbackNamespace } from './lib.mjs';

const artifacts = join(repoRoot, 'tests', 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });

/**
 * Layout checks a person would make on the call page: every control is on screen and
 * at least 44 px tall (touch targets), and each remote tile is visible and not tiny.
 */
async function assertLayout(page, label) {
  const viewport = page.viewportSize();
  const boxes = await page.evaluate(() =>
    [...document.querySelectorAll('.controls button, .tile.remote')].filter((el) => el.getClientRects().length > 0).map((el) => {
      const r = el.getBoundingClientRect();
      return { cls: el.className, x: r.x, y: r.y, w: r.width, h: r.height };
    }));
  for (const b of boxes) {
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= viewport.width + 1 && b.y + b.h <= viewport.height + 1, `${label}: ${b.cls} on screen ${JSON.stringify(b)}`);
    if (b.cls.includes('round')) assert.ok(b.h >= 44 && b.w >= 44, `${label}: ${b.cls} is a large touch target`);
    if (b.cls.includes('tile')) assert.ok(b.w >= 150 && b.h >= 100, `${label}: remote tile is a usable size`);
  }
  // With the path line empty (as while reconnecting) the control bar keeps its height
  // instead of taking the call grid's stretching row.
  const saved = await page.textContent('#path-reason');
  const controls = await page.$eval('.controls', (el) => {
    /** @type {HTMLElement} */ (document.getElementById('path-reason')).textContent = '';
    return el.getBoundingClientRect().height;
  });
  await page.$eval('#path-reason', (el, t) => { el.textContent = t; }, saved);
  console.log(`${label}: control bar ${controls} px with the path line empty`);
  assert.ok(controls < 120, `${label}: the control bar keeps its height (${controls} px)`);
  // The whole remote picture is shown (letterboxed), not cropped to the tile.
  const fits = await page.$$eval('.tile.remote video', (vs) => vs.map((v) => getComputedStyle(v).objectFit));
  assert.ok(fits.length > 0, `${label}: a remote video`);
  for (const fit of fits) assert.equal(fit, 'contain', `${label}: remote video object-fit`);
  await page.screenshot({ path: join(artifacts, `call-${label}.png`) });
}

const skip = canUseNetns() ? false : 'needs root to create a network namespace';
let ns;
let server;
let browser;

before(async () => {
  if (skip) return;
  ns = loopbackNamespace('call');
  server = await startServer([], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

/**
 * Asserts the page plays every remote participant: video with a size, frames decoded
 * and bytes received rising over two seconds, audio packets arriving, and the call
 * carried by the server (selected pair's remote address is the server's media port).
 */
async function assertPlaying(page, label, expectRemotes) {
  const first = await waitFor(async () => {
    const s = await mediaStats(page);
    return s && s.videos.length === expectRemotes && s.videos.every((v) => v.width > 0) &&
      s.video.streams >= expectRemotes && s.video.framesDecoded > 0 ? s : null;
  }, 20000, `${label}: ${expectRemotes} remote videos playing`);
  await new Promise((r) => setTimeout(r, 3000));
  const later = await mediaStats(page);
  assert.ok(later.video.framesDecoded > first.video.framesDecoded + 10, `${label}: frames keep decoding ${first.video.framesDecoded} -> ${later.video.framesDecoded}`);
  assert.ok(later.video.bytesReceived > first.video.bytesReceived, `${label}: video bytes rise`);
  assert.ok(later.audio.packetsReceived > first.audio.packetsReceived + 10, `${label}: audio packets arrive ${first.audio.packetsReceived} -> ${later.audio.packetsReceived}`);
  assert.equal(later.remoteAddress, server.mediaAddr, `${label}: the call is relayed by the server`);
  assert.equal(later.state, 'connected');
  return later;
}

test('two browsers call each other through the server', { skip }, async () => {
  const a = await newPage(browser);
  const b = await newPage(browser, { width: 390, height: 844 });
  const t0 = Date.now();
  await gotoRetry(a, `${server.url}?room=pair&name=Alice&autojoin=1&mode=relay`);
  await gotoRetry(b, `${server.url}?room=pair&name=Bob&autojoin=1&mode=relay`);
  // Time from autojoin to the first decoded remote frame on the second page.
  await waitFor(async () => {
    const s = await mediaStats(b);
    return s && s.video.framesDecoded > 0;
  }, 20000, 'first decoded frame');
  console.log(`autojoin to first decoded remote frame: ${Date.now() - t0} ms`);
  try {
    await assertPlaying(a, 'alice', 1);
    await assertPlaying(b, 'bob', 1);
    await waitFor(async () => (await a.textContent('#status-text'))?.includes('relayed via server'), 5000, 'status text');
    await assertLayout(a, 'laptop');
    await assertLayout(b, 'phone');
    assert.equal(await a.textContent('[data-peer] .who'), 'Bob');
    assert.equal(await b.textContent('[data-peer] .who'), 'Alice');

    // Muting is shown to the other side.
    await a.click('#mic');
    await waitFor(async () => (await b.getAttribute('[data-peer]', 'class'))?.includes('muted'), 5000, 'muted badge');
    await a.click('#cam');
    await waitFor(async () => (await b.getAttribute('[data-peer]', 'class'))?.includes('no-video'), 5000, 'camera-off avatar');
  } catch (e) {
    console.log(a.logs.join('\n'), b.logs.join('\n'), server.logs().slice(-4000));
    throw e;
  } finally {
    await a.context().close();
    await b.context().close();
  }
});

/** The remote tile named `name`: its video's size and play position. */
async function tileVideo(page, name) {
  return page.evaluate((name) => {
    const tile = [...document.querySelectorAll('[data-peer]')].find((t) => t.querySelector('.who')?.textContent === name);
    const v = /** @type {HTMLVideoElement | null | undefined} */ (tile?.querySelector('video'));
    return v ? { width: v.videoWidth, time: v.currentTime } : null;
  }, name);
}

test('a third participant joins, then one leaves, and a fourth takes the free m-lines', { skip }, async () => {
  const pages = [];
  for (const name of ['Ann', 'Ben', 'Cat']) {
    const p = await newPage(browser);
    await gotoRetry(p, `${server.url}?room=trio&name=${name}&autojoin=1&mode=relay`);
    pages.push(p);
    await new Promise((r) => setTimeout(r, 300));
  }
  const [ann, ben, cat] = pages;
  try {
    await assertPlaying(ann, 'ann', 2);
    await assertPlaying(ben, 'ben', 2);
    await assertPlaying(cat, 'cat', 2);
    await cat.click('#hangup');
    for (const [p, label] of [[ann, 'ann'], [ben, 'ben']]) {
      await waitFor(async () => (await p.locator('[data-peer]').count()) === 1, 10000, `${label}: cat's tile removed`);
      await assertPlaying(p, label, 1);
    }
    const transceivers = () => ann.evaluate(() => /** @type {any} */ (window).lanrelay.session.relay.pc.getTransceivers().length);
    const before = await transceivers();
    // Dan's tracks go out on the m-lines Cat's had (inactive since Cat left): his
    // tile must show his video, although those m-lines' stream ids still name Cat.
    const dan = await newPage(browser);
    pages.push(dan);
    await gotoRetry(dan, `${server.url}?room=trio&name=Dan&autojoin=1&mode=relay`);
    for (const [p, label] of [[ann, 'ann'], [ben, 'ben']]) {
      const first = await waitFor(async () => {
        const v = await tileVideo(p, 'Dan');
        return v && v.width > 0 ? v : null;
      }, 20000, `${label}: Dan's tile plays`);
      await waitFor(async () => ((await tileVideo(p, 'Dan'))?.time ?? 0) > first.time + 1, 5000, `${label}: Dan's video advances`);
      await assertPlaying(p, label, 2);
    }
    assert.equal(await transceivers(), before, 'no new m-line for Dan: Cat\'s were reused');
  } catch (e) {
    for (const p of pages) console.log(p.logs.join('\n'));
    console.log(server.logs().slice(-4000));
    throw e;
  } finally {
    for (const p of pages) await p.context().close();
  }
});

test('H.264 video is relayed to a receiver (Safari sends H.264)', { skip }, async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  try {
    await gotoRetry(a, `${server.url}?room=h264&name=Hana&autojoin=1&vcodec=h264&mode=relay`);
    await gotoRetry(b, `${server.url}?room=h264&name=Vic&autojoin=1&mode=relay`);
    const s = await assertPlaying(b, 'vic', 1);
    assert.deepEqual(s.video.codecs, ['video/H264'], 'vic decodes H.264 from hana');
    const back = await assertPlaying(a, 'hana', 1);
    assert.deepEqual(back.video.codecs, ['video/VP8'], 'hana decodes VP8 from vic');
  } catch (e) {
    console.log(a.logs.join('\n'), b.logs.join('\n'), server.logs().slice(-4000));
    throw e;
  } finally {
    await a.context().close();
    await b.context().close();
  }
});

test('a full room is refused with a clear message', { skip }, async () => {
  const small = await startServer(['--room-capacity', '1'], { netns: ns.name });
  const a = await newPage(browser);
  const b = await newPage(browser);
  try {
    await gotoRetry(a, `${small.url}?room=solo&name=One&autojoin=1`);
    await waitFor(async () => (await a.textContent('#status-text'))?.startsWith('Connected'), 15000, 'first connects');
    await gotoRetry(b, `${small.url}?room=solo&name=Two&autojoin=1`);
    await waitFor(async () => !(await b.isHidden('#failed')), 10000, 'failure overlay');
    const reason = await b.textContent('#failed-reason');
    assert.match(reason, /full/);
  } finally {
    await a.context().close();
    await b.context().close();
    await small.stop();
  }
});
