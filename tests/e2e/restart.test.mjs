// Browser end-to-end: the server is killed with SIGKILL in the middle of a relayed call
// and started again at once, on the same ports with the same certificate directory
// (what systemd's Restart= does after a crash). The two participants and a viewer page
// must be back in the call (video decoding again) within 10 s of the restart with
// nobody clicking anything, and the server must present the same certificate. A
// second call rides out a server that stays down for 17 s (a slow restart, a reboot):
// the pages say they are reconnecting meanwhile and rejoin by themselves.
// Inside a fresh network namespace with only loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, launchBrowser, newPage, waitFor, gotoRetry, canUseNetns, loopbackNamespace, sessionState } from './lib.mjs';

/** The promise: back in the call this long after the restart. */
const BACK_WITHIN_MS = 10000;

const skip = canUseNetns() ? false : 'needs root to create a network namespace';
let ns;
let server;
let browser;

before(async () => {
  if (skip) return;
  ns = loopbackNamespace('restart');
  server = await startServer([], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

/**
 * The SHA-256 fingerprint of the certificate the server presents (its leaf), read with
 * node:tls from inside the namespace.
 * @param {number} port
 */
function leafFingerprint(port) {
  const script = `
    const tls = require('node:tls');
    const s = tls.connect({ host: '127.0.0.1', port: ${port}, rejectUnauthorized: false }, () => {
      process.stdout.write(s.getPeerCertificate().fingerprint256);
      s.end();
    });
    s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
  return execFileSync('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { encoding: 'utf8' });
}

/**
 * Marks the page's current media connection to the server as the one from before the
 * restart, and starts recording the call states the page goes through.
 * @param {import('playwright-core').Page} page
 */
async function markBeforeRestart(page) {
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.__before = w.lanrelay.session.pc;
    w.__states = [];
    w.lanrelay.session.addEventListener('state', (/** @type {CustomEvent} */ ev) => w.__states.push(ev.detail.state));
  });
}

/**
 * Video frames decoded on the page's media connection, whether that connection was
 * made after `markBeforeRestart`, and what the page shows.
 * @param {import('playwright-core').Page} page
 */
async function receiving(page) {
  return page.evaluate(async () => {
    const w = /** @type {any} */ (window);
    const s = w.lanrelay?.session;
    const pc = s?.pc;
    let framesDecoded = 0;
    if (pc) {
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') framesDecoded += r.framesDecoded || 0;
      });
    }
    const widths = [...document.querySelectorAll('video.remote')].map((v) => /** @type {HTMLVideoElement} */ (v).videoWidth);
    return {
      fresh: !!pc && w.__before !== undefined && pc !== w.__before,
      framesDecoded,
      state: s?.state,
      states: w.__states,
      widths,
      status: document.getElementById('status-text')?.textContent,
      failedShown: !document.getElementById('failed')?.hidden,
    };
  });
}

/**
 * Waits until the page decodes video from `remotes` senders, its frame count rising
 * between two reads, on a connection made after the mark when `fresh`. Returns when.
 * @param {import('playwright-core').Page} page
 * @param {number} remotes
 * @param {boolean} fresh
 * @param {number} ms
 * @param {string} label
 */
async function decodingAgain(page, remotes, fresh, ms, label) {
  let first = null;
  return waitFor(async () => {
    const r = await receiving(page);
    const ok = (!fresh || r.fresh) && r.framesDecoded > 0 && r.widths.length === remotes && r.widths.every((w) => w > 0);
    if (!ok) return null;
    if (!first) first = r;
    return r.framesDecoded > first.framesDecoded + 5 ? { at: Date.now(), ...r } : null;
  }, ms, `${label}: video from ${remotes} decoding${fresh ? ' after the restart' : ''}`);
}

/**
 * Kills the server with SIGKILL, waits `downMs`, starts it again in its place (same
 * ports, same certificates) and returns when it was started.
 * @param {number} downMs
 * @param {any[]} servers every server started, for failure reports
 */
async function killAndRestart(downMs, servers) {
  const killedAt = Date.now();
  await server.kill();
  await new Promise((r) => setTimeout(r, downMs));
  const restartAt = Date.now();
  server = await startServer([], { netns: ns.name, reuse: server.reuse });
  servers.push(server);
  console.log(`killed (${restartAt - killedAt} ms down); the new server was up ${Date.now() - restartAt} ms after it was started`);
  return restartAt;
}

/**
 * Asserts each page decodes video again within BACK_WITHIN_MS of `restartAt` on a
 * new connection, showed it was reconnecting, never showed a failure, and is connected.
 * @param {[import('playwright-core').Page, string, number][]} pages
 * @param {number} restartAt
 */
async function assertAllBack(pages, restartAt) {
  const back = await Promise.all(pages.map(([p, label, remotes]) => decodingAgain(p, remotes, true, BACK_WITHIN_MS, label)));
  for (const [i, [, label]] of pages.entries()) {
    const r = back[i];
    console.log(`${label}: decoding again ${r.at - restartAt} ms after the restart (states ${r.states.join(' > ')}; "${r.status}")`);
    assert.ok(r.at - restartAt <= BACK_WITHIN_MS, `${label} back within ${BACK_WITHIN_MS} ms`);
    assert.ok(r.states.includes('reconnecting'), `${label} showed that it was reconnecting`);
    assert.ok(!r.states.includes('failed') && !r.failedShown, `${label} never showed a failure`);
    assert.equal(r.state, 'connected', `${label} is connected`);
  }
}

test('kill -9 and restart under a live call: every page is back within 10 s, same certificate', { skip }, async () => {
  const a = await newPage(browser);
  const b = await newPage(browser, { width: 390, height: 844 });
  const v = await newPage(browser);
  const pages = [[a, 'alice', 1], [b, 'bob', 1], [v, 'viewer', 2]];
  const servers = [server];
  try {
    await gotoRetry(a, `${server.url}?room=lasting&name=Alice&autojoin=1&mode=relay`);
    await gotoRetry(b, `${server.url}?room=lasting&name=Bob&autojoin=1&mode=relay`);
    await gotoRetry(v, `${server.url}?room=lasting&role=viewer&name=Vee`);
    for (const [p, label, remotes] of pages) await decodingAgain(p, remotes, false, 20000, label);
    const before = leafFingerprint(server.port);
    for (const [p] of pages) await markBeforeRestart(p);

    const restartAt = await killAndRestart(0, servers);
    assert.equal(leafFingerprint(server.port), before, 'the server presents the same certificate after the restart');

    await assertAllBack(pages, restartAt);
    // Still the same people in the room, and the new server carries them.
    assert.equal(await a.textContent('[data-peer] .who'), 'Bob');
    assert.equal(await b.textContent('[data-peer] .who'), 'Alice');
  } catch (e) {
    for (const [p, label] of pages) console.log(`--- ${label}`, JSON.stringify(await sessionState(p)), p.logs.join('\n'));
    for (const s of servers) console.log(s.logs().slice(-4000));
    throw e;
  } finally {
    for (const [p] of pages) await p.context().close();
  }
});

test('a page waits out a longer outage (17 s) and rejoins by itself', { skip }, async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  const pages = [[a, 'ann', 1], [b, 'ben', 1]];
  const servers = [server];
  try {
    await gotoRetry(a, `${server.url}?room=outage&name=Ann&autojoin=1&mode=relay`);
    await gotoRetry(b, `${server.url}?room=outage&name=Ben&autojoin=1&mode=relay`);
    for (const [p, label, remotes] of pages) await decodingAgain(p, remotes, false, 20000, label);
    for (const [p] of pages) await markBeforeRestart(p);
    // Longer than a page used to keep trying (five attempts over 15.5 s).
    const down = killAndRestart(17000, servers);
    await new Promise((r) => setTimeout(r, 10000));
    for (const [p, label] of pages) {
      assert.match(await p.textContent('#status-text'), /^Reconnecting/, `${label} says it is reconnecting while the server is down`);
      // Whatever line is empty meanwhile (the path line, the waiting line), the
      // control bar keeps its height instead of taking the call grid's stretching row.
      // Here a relayed page still shows its path line and, its peer gone, the waiting
      // line: empty and hide both, as a page reconnecting with its peers kept shows
      // them (the case that let the bar take the stretching row).
      const bar = await p.$eval('.controls', (el) => {
        /** @type {HTMLElement} */ (document.getElementById('path-reason')).textContent = '';
        /** @type {HTMLElement} */ (document.getElementById('alone')).hidden = true;
        return el.getBoundingClientRect().height;
      });
      console.log(`${label}: control bar ${bar} px while reconnecting, path and waiting lines empty`);
      assert.ok(bar < 120, `${label}: the control bar stays under 120 px while reconnecting (${bar} px)`);
    }
    await assertAllBack(pages, await down);
  } catch (e) {
    for (const [p, label] of pages) console.log(`--- ${label}`, JSON.stringify(await sessionState(p)), p.logs.join('\n'));
    for (const s of servers) console.log(s.logs().slice(-4000));
    throw e;
  } finally {
    for (const [p] of pages) await p.context().close();
  }
});
