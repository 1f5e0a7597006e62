// Browser end-to-end: screen sharing. Two participants and a viewer page in one
// Chromium (a fresh network namespace with only loopback). Ann shares her screen
// (Chromium's fake capture: with --use-fake-device-for-media-stream and
// --use-fake-ui-for-media-stream, getDisplayMedia returns a generated 1280x720
// "screen" without a picker); Bob (a phone-sized page whose browser has no
// getDisplayMedia, so no Share button) and the viewer decode it at its full size in
// the large area, cameras in a strip; the browser's "Stop sharing" (the captured
// track ends) removes it everywhere and the layout returns.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, waitFor, gotoRetry, repoRoot, canUseNetns, loopbackNamespace } from './lib.mjs';

const artifacts = join(repoRoot, 'tests', 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });

const skip = canUseNetns() ? false : 'needs root to create a network namespace';
let ns;
let server;
let browser;

before(async () => {
  if (skip) return;
  ns = loopbackNamespace('screen');
  server = await startServer([], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

/** What a page shows in its large area. */
async function stage(page) {
  return page.evaluate(() => {
    const s = /** @type {HTMLElement} */ (document.getElementById('stage'));
    const v = /** @type {HTMLVideoElement} */ (document.getElementById('stage-video'));
    return {
      shown: !s.hidden && s.offsetHeight > 0,
      presenting: document.getElementById('call')?.classList.contains('presenting'),
      width: v.videoWidth,
      height: v.videoHeight,
      time: v.currentTime,
      fit: getComputedStyle(v).objectFit,
      label: document.getElementById('stage-label')?.textContent || '',
      sharer: s.dataset.sharer || '',
      stageHeight: s.offsetHeight,
      tilesHeight: document.getElementById('tiles')?.offsetHeight || 0,
    };
  });
}

test('screen: a share is decoded at full size in the large area everywhere, and its end removes it', { skip }, async () => {
  const room = `${server.url}?room=screen&autojoin=1&mode=relay`;
  const ann = await newPage(browser);
  await gotoRetry(ann, `${room}&name=Ann`);
  const bob = await newPage(browser, { width: 390, height: 844 });
  // A phone: no getDisplayMedia, so no Share button (it can still watch a share).
  await bob.context().addInitScript(() => {
    delete (/** @type {any} */ (MediaDevices.prototype)).getDisplayMedia;
  });
  await gotoRetry(bob, `${room}&name=Bob`);
  const viewer = await newPage(browser);
  await gotoRetry(viewer, `${server.url}?room=screen&role=viewer`);
  const pages = { ann, bob, viewer };
  try {
    await ann.waitForSelector('#screen:not([hidden])', { timeout: 15000 });
    await waitFor(async () => bob.evaluate(() => !!document.querySelector('.tile.remote video')?.videoWidth), 20000, "Bob sees Ann's camera");
    assert.equal(await bob.isHidden('#screen'), true, 'no Share button without getDisplayMedia');
    assert.equal(await viewer.isHidden('#screen'), true, 'no Share button for a viewer');
    for (const p of [ann, bob, viewer]) assert.equal((await stage(p)).shown, false, 'no share yet');

    await ann.click('#screen');
    await waitFor(async () => ann.evaluate(() => !!(/** @type {any} */ (window)).lanrelay.session.screenTrack), 10000, 'Ann shares');
    const sent = await ann.evaluate(() => {
      const t = (/** @type {any} */ (window)).lanrelay.session.screenTrack;
      return { ...t.getSettings(), hint: t.contentHint, id: (/** @type {any} */ (window)).lanrelay.session.id };
    });
    assert.ok(sent.width >= 640 && sent.height >= 360, JSON.stringify(sent));
    assert.equal(sent.hint, 'detail');
    assert.equal(await ann.getAttribute('#screen', 'aria-pressed'), 'true');
    const own = await stage(ann);
    assert.ok(own.shown && own.label.includes('You are sharing'), JSON.stringify(own));

    // The size of the frames captured, from Ann's own preview: the track's settings
    // may name the display's size (1280x800) while the fake capture's frames are
    // 1280x720.
    await waitFor(async () => (await stage(ann)).width > 0, 10000, "Ann's preview plays");
    const { width, height } = await stage(ann);
    assert.ok(width >= 640 && height >= 360, `captured ${width}x${height}`);

    // Bob and the viewer: the share, at the size it is sent, large and whole.
    for (const [name, p] of [['Bob', bob], ['the viewer', viewer]]) {
      let last = {};
      await waitFor(async () => {
        const s = (last = await stage(p));
        return s.shown && s.width === width && s.height === height;
      }, 30000, () => `${name} decodes the share at ${width}x${height} (last: ${JSON.stringify(last)})`);
      const a = await stage(p);
      await p.waitForTimeout(500);
      const b = await stage(p);
      assert.ok(b.time > a.time, `${name}: the share plays`);
      assert.equal(b.presenting, true);
      assert.equal(b.fit, 'contain', 'never cropped');
      assert.equal(b.sharer, String(sent.id));
      assert.match(b.label, /Ann/);
      assert.ok(b.stageHeight > b.tilesHeight, `${name}: the share is the large area (${b.stageHeight} px) above the cameras' strip (${b.tilesHeight} px)`);
      const cameraStill = await p.evaluate(() => !!document.querySelector('.tile.remote video')?.videoWidth);
      assert.ok(cameraStill, `${name} still has Ann's camera in a tile`);
    }
    await bob.screenshot({ path: join(artifacts, 'screen-phone.png') });
    await viewer.screenshot({ path: join(artifacts, 'screen-viewer.png') });

    // The browser's "Stop sharing" bar ends the captured track.
    await ann.evaluate(() => {
      const t = (/** @type {any} */ (window)).lanrelay.session.screenTrack;
      t.stop();
      t.dispatchEvent(new Event('ended'));
    });
    for (const [name, p] of [['Ann', ann], ['Bob', bob], ['the viewer', viewer]]) {
      await waitFor(async () => {
        const s = await stage(p);
        return !s.shown && !s.presenting;
      }, 15000, `the share gone from ${name}'s page`);
    }
    assert.equal(await ann.getAttribute('#screen', 'aria-pressed'), 'false');
    for (const p of [bob, viewer]) {
      assert.equal(await p.evaluate(() => (/** @type {any} */ (window)).lanrelay.session.screens.size), 0);
      assert.ok(await p.evaluate(() => !!document.querySelector('.tile.remote video')?.videoWidth), 'the camera tile stays');
    }
  } catch (e) {
    for (const [name, p] of Object.entries(pages)) console.log(`--- ${name}'s console:\n${(p.logs || []).slice(-30).join('\n')}`);
    console.log(`--- server log:\n${server.logs().slice(-4000)}`);
    throw e;
  }
});
