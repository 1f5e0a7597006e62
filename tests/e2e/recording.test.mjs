// Browser end-to-end: recording from the call page. Two participants and a viewer
// page in one Chromium (a fresh network namespace with only loopback), relayed: Ann
// opened the room and hosts it, so only she has the Record button (Bob and the viewer
// do not). She presses it; every page, the viewer's too, shows the Recording
// indicator; about 10 s later she stops it (the button says Stop recording) and the
// indicator goes from every page. Each participant's file exists, ffprobe reports VP8
// and Opus and a duration within 0.5 s of the time between the host's page hearing
// the recording start and stop, and ffmpeg decodes every frame without a word. Ann
// opens the room's recordings with her Recordings link: the page lists both files
// (duration, size) and its <video> plays one (currentTime advances, through HTTP
// range requests); Bob's browser, without the host's key, is refused.
// Then the same room in automatic mode: Ann and Bob talk directly; Record moves both
// pages to the relay (and keeps them there, the reason in words), the file decodes;
// Stop lets them go direct again.
// Last, on a bench of its own: Ann's browser sends to the server over a link that
// loses 5 % of its packets each way (netem, or wire.py where the kernel has none);
// her file and Bob's still decode without an error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, waitFor, gotoRetry, repoRoot, canUseNetns, loopbackNamespace, emulatedClients } from './lib.mjs';

const artifacts = join(repoRoot, 'tests', 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = !canUseNetns()
  ? 'needs root to create a network namespace'
  : !have('ffprobe') || !have('ffmpeg')
    ? 'needs ffmpeg and ffprobe (apt-get install ffmpeg; tests/run.sh does)'
    : false;
let ns;
let server;
let browser;
let dir;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'lanrelay-recordings-'));
  ns = loopbackNamespace('rec');
  server = await startServer(['--recordings', dir], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function open(url, b = browser) {
  const page = await newPage(b);
  await gotoRetry(page, url);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 20000 });
  // When this page heard the recording start and stop (the host's times the file).
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.recordingTimes = [];
    w.lanrelay.session.addEventListener('recording', (/** @type {any} */ ev) => w.recordingTimes.push({ on: ev.detail.on, at: performance.now() }));
  });
  return page;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** ffprobe's codecs (sorted) and duration of `path`. */
function probe(path) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name:format=duration', '-of', 'json', path]);
  const v = JSON.parse(String(out));
  return { codecs: v.streams.map((s) => s.codec_name).sort(), duration: Number(v.format.duration) };
}

/**
 * What ffmpeg says decoding every frame of `path` (nothing: no error). The decoded
 * frames keep the file's own (millisecond) times, `-enc_time_base -1`: by default
 * ffmpeg 5.1 re-times a video it believes is 30 fps onto a 1/30 s grid for the null
 * output, and two frames 33 ms apart whose times straddle a grid point land on one
 * tick ("non monotonically increasing dts to muxer"), a complaint of the null muxer
 * about ffmpeg's own re-timing, not about the file or its decoding (the same happens
 * to any variable-frame-rate WebM, a browser's MediaRecorder's too).
 */
function decodeErrors(path) {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-i', path, '-enc_time_base', '-1', '-f', 'null', '-']);
  return String(r.stderr).trim();
}

/** The recording's files of `room` in the folder, once none grows any more. */
async function files(room, count) {
  let names = [];
  await waitFor(() => {
    names = readdirSync(dir).filter((n) => n.startsWith(`${room}-`) && n.endsWith('.webm'));
    return names.length >= count;
  }, 10000, `${count} files of ${room}`);
  return names.map((n) => join(dir, n));
}

/** The page's path and the reason it gives. */
const pathOf = (page) => page.evaluate(() => {
  const s = /** @type {any} */ (window).lanrelay.session;
  return { path: s.path, reason: s.pathReason, direct: !!s.direct };
});

test('recording: the host records a relayed call, every page shows it, the host plays the files', { skip }, async () => {
  const room = `${server.url}?room=lesson&autojoin=1&mode=relay&vcodec=vp8`;
  const ann = await open(`${room}&name=Ann`);
  const bob = await open(`${room}&name=Bob`);
  const viewer = await open(`${server.url}?room=lesson&role=viewer`);
  const pages = [ann, bob, viewer];
  try {
    await ann.waitForSelector('#record:not([hidden])', { timeout: 5000 });
    await sleep(500);
    assert.equal(await bob.isVisible('#record'), false, 'no Record button for a participant');
    assert.equal(await viewer.isVisible('#record'), false, 'no Record button for a viewer');
    assert.equal(await ann.isVisible('#recordings-link'), true, 'the host has the Recordings link');
    assert.equal(await bob.isVisible('#recordings-link'), false);
    for (const p of pages) assert.equal(await p.isVisible('#recording'), false, 'not recorded yet');

    await ann.click('#record');
    for (const p of pages) await p.waitForSelector('#recording:not([hidden])', { timeout: 5000 });
    assert.equal((await ann.textContent('#record .label'))?.trim(), 'Stop recording');
    await sleep(10000);
    await ann.click('#record');
    for (const p of pages) await p.waitForSelector('#recording', { state: 'hidden', timeout: 5000 });
    const times = await ann.evaluate(() => /** @type {any} */ (window).recordingTimes);
    assert.deepEqual(times.map((t) => t.on), [true, false]);
    const wall = (times[1].at - times[0].at) / 1000;
    console.log(`recorded for ${wall.toFixed(2)} s`);

    // One file per participant (the viewer sends nothing), each whole and playable.
    const paths = await files('lesson', 2);
    await sleep(1000);
    for (const path of paths) {
      const { codecs, duration } = probe(path);
      console.log(`${path}: ${codecs.join('+')} ${duration.toFixed(2)} s, ${statSync(path).size} bytes`);
      assert.deepEqual(codecs, ['opus', 'vp8'], path);
      assert.ok(Math.abs(duration - wall) <= 0.5, `${path}: ${duration.toFixed(2)} s for ${wall.toFixed(2)} s recorded`);
      assert.equal(decodeErrors(path), '', `${path}: ffmpeg decodes it without errors`);
    }

    // The host's Recordings link opens the listing in a new tab: both files, with
    // their duration and size; a <video> plays one.
    const [list] = await Promise.all([ann.context().waitForEvent('page'), ann.click('#recordings-link')]);
    await list.waitForLoadState();
    await waitFor(async () => (await list.locator('.rec-item').count()) === 2, 10000, 'two files listed');
    await waitFor(async () => !(await list.textContent('#rec-list'))?.includes('being recorded'), 10000, 'both finished');
    const facts = await list.locator('.rec-facts').allTextContents();
    console.log('listed:', facts);
    for (const f of facts) assert.match(f, /^0:1\d · \d+(\.\d)? [KM]B · /, f);
    const played = await list.evaluate(async () => {
      const v = /** @type {HTMLVideoElement} */ (document.querySelector('.rec-item video'));
      v.muted = true;
      await v.play();
      const start = v.currentTime;
      await new Promise((r) => setTimeout(r, 2500));
      // Seeking asks the server for a range.
      v.currentTime = 8;
      await new Promise((r) => v.addEventListener('seeked', r, { once: true }));
      return { start, after: v.currentTime, duration: v.duration, error: v.error?.message ?? null };
    });
    console.log('played:', played);
    assert.equal(played.error, null);
    assert.ok(played.after >= 8, `the player seeked and plays: ${JSON.stringify(played)}`);
    await list.screenshot({ path: join(artifacts, 'recordings-page.png') });

    // Bob's browser has no key: the listing refuses it.
    const bobList = await bob.context().newPage();
    const res = await bobList.goto(`${server.url}recordings`);
    assert.equal(res?.status(), 401);
    await bobList.waitForSelector('#rec-status:has-text("Only the operator")', { timeout: 5000 });
  } catch (e) {
    for (const p of pages) console.log(p.logs.slice(-15).join('\n'));
    console.log(server.logs().slice(-3000));
    throw e;
  }
});

test('recording: an automatic call moves to the relay while recorded, and back after', { skip }, async () => {
  const room = `${server.url}?room=chat2&autojoin=1&mode=auto&vcodec=vp8`;
  const ann = await open(`${room}&name=Ann`);
  const bob = await open(`${room}&name=Bob`);
  const pages = [ann, bob];
  try {
    for (const p of pages) await waitFor(async () => (await pathOf(p)).path === 'direct', 20000, 'the call goes direct');
    await ann.click('#record');
    for (const p of pages) {
      await waitFor(async () => {
        const s = await pathOf(p);
        return s.path === 'relay' && !s.direct;
      }, 5000, 'both pages on the relay while recorded');
      assert.match((await pathOf(p)).reason, /being recorded/);
    }
    // It stays there (no direct retry while recorded).
    await sleep(6000);
    for (const p of pages) assert.equal((await pathOf(p)).path, 'relay', 'still relayed');
    await ann.click('#record');
    for (const p of pages) await p.waitForSelector('#recording', { state: 'hidden', timeout: 5000 });
    for (const path of await files('chat2', 2)) {
      const { codecs } = probe(path);
      assert.deepEqual(codecs, ['opus', 'vp8'], path);
      assert.equal(decodeErrors(path), '', path);
    }
    // Free again: direct once more.
    for (const p of pages) await waitFor(async () => (await pathOf(p)).path === 'direct', 20000, 'direct again after the recording');
  } catch (e) {
    for (const p of pages) console.log(p.logs.slice(-15).join('\n'));
    console.log(server.logs().slice(-3000));
    throw e;
  }
});

test('recording: with 5 % loss on the publisher\'s leg the files still decode without errors', { skip }, async () => {
  const net = await emulatedClients();
  const lossDir = mkdtempSync(join(tmpdir(), 'lanrelay-recordings-loss-'));
  let lossServer;
  let b1;
  let b2;
  const pages = [];
  try {
    lossServer = await startServer(['--recordings', lossDir], { netns: net.srv, ip: net.serverIp, nice: -10 });
    b1 = await launchBrowser([], { netns: net.c1 });
    b2 = await launchBrowser([], { netns: net.c2 });
    await net.shape('relay1', 'loss 5%');
    console.log(`5 % loss on Ann's leg by ${net.engine}`);
    const room = `${lossServer.url}?room=lossy&autojoin=1&mode=relay&vcodec=vp8`;
    const ann = await open(`${room}&name=Ann`, b1);
    pages.push(ann);
    const bob = await open(`${room}&name=Bob`, b2);
    pages.push(bob);
    await ann.waitForSelector('#record:not([hidden])', { timeout: 5000 });
    await sleep(2000);
    await ann.click('#record');
    for (const p of pages) await p.waitForSelector('#recording:not([hidden])', { timeout: 5000 });
    await sleep(10000);
    const lost = await ann.evaluate(() => /** @type {any} */ (window).lanrelay.session.serverStats?.upLoss ?? null);
    await ann.click('#record');
    for (const p of pages) await p.waitForSelector('#recording', { state: 'hidden', timeout: 5000 });
    let names = [];
    await waitFor(() => {
      names = readdirSync(lossDir).filter((n) => n.startsWith('lossy-') && n.endsWith('.webm'));
      return names.length >= 2;
    }, 10000, 'two files of lossy');
    await sleep(1000);
    console.log(`the server saw ${lost === null ? '?' : (lost * 100).toFixed(1)} % of Ann's packets lost in the last second`);
    for (const line of lossServer.logs().split('\n').filter((l) => l.includes('recorder'))) console.log(line);
    for (const path of names.map((n) => join(lossDir, n))) {
      const { codecs, duration } = probe(path);
      console.log(`${path}: ${codecs.join('+')} ${duration.toFixed(2)} s, ${statSync(path).size} bytes`);
      assert.deepEqual(codecs, ['opus', 'vp8'], path);
      assert.ok(duration > 8, `${path}: ${duration.toFixed(2)} s`);
      const errors = decodeErrors(path);
      // Kept for a look at its packets (ffprobe -show_packets) when it fails.
      if (errors) copyFileSync(path, join(artifacts, 'recording-loss-failed.webm'));
      assert.equal(errors, '', `${path}: ffmpeg decodes it without errors`);
    }
  } catch (e) {
    for (const p of pages) console.log(p.logs.slice(-15).join('\n'));
    console.log(lossServer?.logs().slice(-3000));
    throw e;
  } finally {
    await b1?.close();
    await b2?.close();
    await lossServer?.stop();
    net.remove();
    rmSync(lossDir, { recursive: true, force: true });
  }
});
