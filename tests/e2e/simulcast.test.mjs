// Many viewers and simulcast: one Chromium publisher sends three layers; viewer pages
// (role=viewer) each play exactly one layer, chosen per viewer. A viewer asking for
// low quality gets a smaller layer than one asking for high; switching is clean (frames
// keep decoding); and a viewer whose downlink is squeezed (a token bucket on its link,
// in its own network namespace) is moved down to a layer that fits. A second server
// spreads a room's viewers over its two media workers from the first viewer on: viewers
// served by the worker that does not hold the presenter play their layers too, and
// switch layers.
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

/** The layer the server says it forwards to this viewer, and what the page decodes. */
async function viewerState(page) {
  const s = await mediaStats(page);
  const layer = await page.evaluate(() => [...window.lanrelay.session.layers.values()][0] || null);
  return s && { width: s.video.frameWidth, frames: s.video.framesDecoded, videos: s.videos, layer };
}

/** The received video's RTP counters (which show where a stall sits). */
async function inboundVideo(page) {
  return page.evaluate(async () => {
    const report = await window.lanrelay.session.pc.getStats();
    let row = null;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        row = [r.framesDecoded, r.framesReceived, r.packetsReceived, r.packetsLost, r.nackCount, r.pliCount, r.keyFramesDecoded, r.frameWidth];
      }
    });
    return row;
  });
}

/**
 * Samples framesDecoded every 250 ms for `ms`; returns the longest stall in ms. A stall
 * over 1 s logs the received video's counters over the whole window.
 */
async function longestStall(page, ms) {
  let last = (await viewerState(page)).frames;
  let lastChange = Date.now();
  let worst = 0;
  const start = Date.now();
  const end = start + ms;
  const counters = [];
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 250));
    counters.push(`${Date.now() - start} ms: ${(await inboundVideo(page))?.join(' ')}`);
    const f = (await viewerState(page)).frames;
    if (f > last) {
      last = f;
      lastChange = Date.now();
    }
    worst = Math.max(worst, Date.now() - lastChange);
  }
  if (worst > 1000) {
    console.log(`stall of ${worst} ms; framesDecoded framesReceived packetsReceived packetsLost nackCount pliCount keyFramesDecoded frameWidth:\n${counters.join('\n')}`);
  }
  return worst;
}

test('viewers each get the layer that suits them', { skip }, async () => {
  const pub = await newPage(b1);
  const pages = [pub];
  let failed = true;
  try {
    await gotoRetry(pub, `${server.url}?room=show&name=Presenter&autojoin=1&mode=relay`);
    const low = await newPage(b1, { width: 640, height: 480 });
    const high = await newPage(b1);
    const auto = await newPage(b1);
    pages.push(low, high, auto);
    await gotoRetry(low, `${server.url}?room=show&role=viewer&quality=low`);
    await gotoRetry(high, `${server.url}?room=show&role=viewer&quality=high`);
    await gotoRetry(auto, `${server.url}?room=show&role=viewer`);

    // Every viewer plays; the presenter sees them as a count, not as tiles.
    for (const [p, label] of [[low, 'low'], [high, 'high'], [auto, 'auto']]) {
      await waitFor(async () => {
        const v = await viewerState(p);
        return v && v.frames > 30 && v.videos.length === 1 && v.videos[0].width > 0 && v.layer;
      }, 25000, `${label} viewer plays`);
    }
    await waitFor(async () => (await pub.textContent('#watching')) === '· 3 watching', 5000, 'viewer count');
    assert.equal(await pub.locator('[data-peer]').count(), 0, 'viewers are not tiles');

    const lo = await waitFor(async () => {
      const v = await viewerState(low);
      return v.layer.rid === 'q' && v.width > 0 && v.width <= 400 ? v : null;
    }, 10000, 'low viewer on the smallest layer');
    const hi = await waitFor(async () => {
      const v = await viewerState(high);
      return v.layer.rid === 'f' && v.width >= 960 ? v : null;
    }, 15000, 'high viewer on the full layer');
    console.log(`low viewer: layer ${lo.layer.rid} ${lo.width}px (${lo.layer.reason}); high viewer: layer ${hi.layer.rid} ${hi.width}px (${hi.layer.reason})`);
    assert.ok(lo.width < hi.width);

    // The low viewer changes its mind: the switch is clean, frames keep decoding.
    await low.selectOption('#quality', 'high');
    const stall = longestStall(low, 6000);
    const up = await waitFor(async () => {
      const v = await viewerState(low);
      return v.layer.rid === 'f' && v.width >= 960 ? v : null;
    }, 10000, 'switch up to the full layer');
    const worst = await stall;
    console.log(`low→high switch: now ${up.width}px; longest decode stall during the switch ${worst} ms`);
    // A switch that skipped the keyframe would freeze until the encoder's next one
    // (many seconds) and log decoder errors; a clean switch shows no stall on a quiet
    // machine, but a busy 2-core machine has shown pauses of 1.3 s in sampling.
    assert.ok(worst < 2000, `frames kept decoding (longest stall ${worst} ms)`);
    const errors = low.logs.filter((l) => /decod|pageerror/i.test(l));
    assert.deepEqual(errors, [], 'no decoder errors');
    failed = false;
  } finally {
    if (failed) {
      for (const p of pages) console.log(JSON.stringify(await sessionState(p)), p.logs.join('\n'));
      console.log(server.logs().slice(-4000));
    }
    for (const p of pages) await p.context().close();
  }
});

test('a viewer whose downlink drops is moved down to a layer that fits', { skip }, async () => {
  const pub = await newPage(b1);
  const wide = await newPage(b2); // the viewer in namespace c2, whose link we squeeze
  const pages = [pub, wide];
  let failed = true;
  try {
    await gotoRetry(pub, `${server.url}?room=squeeze&name=Presenter&autojoin=1&mode=relay`);
    await gotoRetry(wide, `${server.url}?room=squeeze&role=viewer`);
    const before = await waitFor(async () => {
      const v = await viewerState(wide);
      return v?.layer && v.layer.rid !== 'q' && v.width >= 640 ? v : null;
    }, 30000, 'the unconstrained viewer climbs above the smallest layer');
    console.log(`unconstrained: layer ${before.layer.rid} ${before.width}px (${before.layer.reason})`);

    net.limitC2(350);
    const cut = Date.now();
    const after = await waitFor(async () => {
      const v = await viewerState(wide);
      return v.layer.rid === 'q' ? v : null;
    }, 20000, 'down-switch after the bandwidth drop');
    const took = Date.now() - cut;
    const frames = after.frames;
    await waitFor(async () => (await viewerState(wide)).frames > frames + 20, 10000, 'video keeps playing on the small layer');
    const now = await viewerState(wide);
    console.log(`downlink limited to 350 kbit/s: down to layer ${now.layer.rid} (${now.width}px) after ${took} ms; reason: ${now.layer.reason}`);
    assert.ok(now.width < before.width);
    failed = false;
  } finally {
    net.limitC2(null);
    if (failed) {
      for (const p of pages) console.log(JSON.stringify(await sessionState(p)), p.logs.join('\n'));
      console.log(server.logs().slice(-4000));
    }
    for (const p of pages) await p.context().close();
  }
});

test('viewers served by another worker than the presenter play their layers', { skip }, async () => {
  const spread = await startServer(['--workers', '2', '--spread-viewers-after', '0'], { netns: net.srv, ip: net.serverIp });
  const pub = await newPage(b1);
  const low = await newPage(b1, { width: 640, height: 480 });
  const high = await newPage(b1);
  const pages = [pub, low, high];
  let failed = true;
  try {
    await gotoRetry(pub, `${spread.url}?room=spread&name=Presenter&autojoin=1&mode=relay`);
    // The presenter's worker has one participant, the other none: the low viewer goes
    // to the other worker, then the high one (a tie) to the presenter's.
    await gotoRetry(low, `${spread.url}?room=spread&role=viewer&quality=low`);
    await waitFor(async () => (await pub.textContent('#watching')) === '· 1 watching', 10000, 'first viewer counted');
    await gotoRetry(high, `${spread.url}?room=spread&role=viewer&quality=high`);
    await waitFor(async () => (await pub.textContent('#watching')) === '· 2 watching', 10000, 'viewer count over both workers');
    const lo = await waitFor(async () => {
      const v = await viewerState(low);
      return v?.layer?.rid === 'q' && v.frames > 30 && v.width > 0 && v.width <= 400 ? v : null;
    }, 25000, 'the far viewer plays the smallest layer');
    const hi = await waitFor(async () => {
      const v = await viewerState(high);
      return v?.layer?.rid === 'f' && v.frames > 30 && v.width >= 960 ? v : null;
    }, 25000, 'the near viewer plays the full layer');
    const health = await pub.evaluate(async () => (await fetch('/healthz')).json());
    console.log(`spread: far viewer layer ${lo.layer.rid} ${lo.width}px, near viewer layer ${hi.layer.rid} ${hi.width}px; workers ${JSON.stringify(health.workers.map((w) => [w.participants, w.forwardedPackets]))}`);
    const split = health.workers.map((w) => w.participants).sort();
    assert.deepEqual(split, [1, 2], `presenter and one viewer on one worker, the other viewer on the other: ${JSON.stringify(health.workers)}`);
    assert.ok(health.workers.every((w) => w.forwardedPackets > 0), 'both workers forward');
    assert.equal(health.rooms, 1, 'one room');
    const frames = (await viewerState(low)).frames;
    await waitFor(async () => (await viewerState(low)).frames > frames + 30, 10000, 'the far viewer keeps playing');

    // The far viewer asks for high quality: its worker requests the keyframe through
    // the presenter's and switches it to the full layer.
    await low.selectOption('#quality', 'high');
    const stall = longestStall(low, 6000);
    const up = await waitFor(async () => {
      const v = await viewerState(low);
      return v.layer.rid === 'f' && v.width >= 960 ? v : null;
    }, 10000, 'the far viewer switches up to the full layer');
    // Before VP8 picture ids were renumbered across switches this switch froze for
    // 2-3 s in some runs (see the README). The bound is the one-worker test's.
    const worst = await stall;
    console.log(`far viewer low→high: now ${up.width}px; longest decode stall ${worst} ms`);
    if (worst > 1000) console.log(spread.logs().slice(-12000));
    assert.ok(worst < 2000, `the far viewer's frames kept decoding (longest stall ${worst} ms)`);
    const errors = low.logs.filter((l) => /decod|pageerror/i.test(l));
    assert.deepEqual(errors, [], 'no decoder errors on the far viewer');
    failed = false;
  } finally {
    if (failed) {
      for (const p of pages) console.log(JSON.stringify(await sessionState(p)), p.logs.join('\n'));
      console.log(spread.logs().slice(-4000));
    }
    for (const p of pages) await p.context().close();
    await spread.stop();
  }
});

test('without bandwidth estimation a viewer plays the layer that fits its screen, negotiating no congestion control', { skip }, async () => {
  const flat = await startServer(['--no-bandwidth-estimation'], { netns: net.srv, ip: net.serverIp });
  const pub = await newPage(b1);
  const viewer = await newPage(b2);
  const pages = [pub, viewer];
  let failed = true;
  try {
    await gotoRetry(pub, `${flat.url}?room=flat&name=Presenter&autojoin=1&mode=relay`);
    await gotoRetry(viewer, `${flat.url}?room=flat&role=viewer`);
    await waitFor(async () => {
      const s = await viewerState(viewer);
      return s?.layer && s.frames > 30 && s.width > 0;
    }, 25000, 'the viewer plays');
    // A 1280-pixel-wide player: the full layer, once its size is reported and the
    // higher layer has fitted for its 2 s (there is no estimate to wait for).
    let last = null;
    const v = await waitFor(async () => {
      const s = (last = await viewerState(viewer));
      return s.layer?.rid === 'f' && s.width >= 960 ? s : null;
    }, 20000, () => `the full layer (last: ${JSON.stringify(last)})`);
    console.log(`no bandwidth estimation: viewer layer ${v.layer.rid} ${v.width}px (${v.layer.reason})`);
    assert.equal(v.layer.reason, 'fits your screen', 'the layer follows the screen, not an estimate');
    const sdp = async (p) => p.evaluate(() => window.lanrelay.session.pc.remoteDescription?.sdp || '');
    assert.ok(!(await sdp(viewer)).includes('transport-wide-cc'), "the viewer's connection negotiates no transport-wide CC");
    assert.ok((await sdp(pub)).includes('transport-wide-cc'), "the presenter's keeps it, for its upload");
    const frames = (await viewerState(viewer)).frames;
    await waitFor(async () => (await viewerState(viewer)).frames > frames + 30, 10000, 'the viewer keeps playing');
    failed = false;
  } finally {
    if (failed) {
      for (const p of pages) console.log(JSON.stringify(await sessionState(p)), p.logs.join('\n'));
      console.log(flat.logs().slice(-4000));
    }
    for (const p of pages) await p.context().close();
    await flat.stop();
  }
});
