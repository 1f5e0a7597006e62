// Browser end-to-end: the room's host. Three participants in one Chromium (a fresh
// network namespace with only loopback), relayed: Ann opened the room and hosts it. A
// `host` message Bob sends by hand on his signaling socket is refused (`notHost`) and
// changes nothing; Ann mutes Bob with the control on his tile, and Cat's inbound
// audio packets from Bob stop rising while Bob's page says the host muted him (his
// own unmute refused); Ann locks the room and removes Cat, whose page says she was
// removed, and whose rejoin is refused with the locked message.
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
  ns = loopbackNamespace('host');
  server = await startServer([], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

async function open(url) {
  const page = await newPage(browser);
  await gotoRetry(page, url);
  await page.waitForSelector('#status[data-state="connected"]', { timeout: 20000 });
  return page;
}

/** The id of participant `name` as `page` knows it. */
function idOf(page, name) {
  return page.evaluate((n) => [.../** @type {any} */ (window).lanrelay.session.peers.values()].find((p) => p.name === n)?.id, name);
}

/** Audio packets `page` received from participant `name` so far (-1: none yet). */
function audioPacketsFrom(page, name) {
  return page.evaluate(async (n) => {
    const s = /** @type {any} */ (window).lanrelay.session;
    const id = [...s.peers.values()].find((p) => p.name === n)?.id;
    const track = s.streams.relay.get(id)?.getAudioTracks()[0];
    if (!track || !s.relay?.pc) return -1;
    let packets = -1;
    (await s.relay.pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.trackIdentifier === track.id) packets = r.packetsReceived;
    });
    return packets;
  }, name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('host: refuses a non-host, mutes, locks and removes', { skip }, async () => {
  const room = `${server.url}?room=board&autojoin=1&mode=relay`;
  const ann = await open(`${room}&name=Ann`);
  const bob = await open(`${room}&name=Bob`);
  const cat = await open(`${room}&name=Cat`);
  const pages = [ann, bob, cat];
  try {
    await waitFor(async () => (await audioPacketsFrom(cat, 'Bob')) > 20, 15000, "Cat receives Bob's audio");
    // Everyone sees who hosts; only the host has the controls.
    const annId = await idOf(bob, 'Ann');
    await bob.waitForSelector(`#tiles figure[data-peer="${annId}"] .host-badge:not([hidden])`, { timeout: 5000 });
    await ann.waitForSelector('#self-tile .host-badge:not([hidden])', { timeout: 5000 });
    await ann.waitForSelector('#lock:not([hidden])', { timeout: 5000 });
    assert.equal(await bob.isVisible('#lock'), false, 'no Lock for a participant');
    assert.equal(await bob.isVisible('.host-controls button'), false, 'no host controls for a participant');

    // Bob, not the host, sends `host` by hand on his signaling socket: refused.
    const catId = await idOf(bob, 'Cat');
    const refusal = await bob.evaluate((peer) => new Promise((resolve) => {
      const s = /** @type {any} */ (window).lanrelay.session;
      s.sig.ws.addEventListener('message', (ev) => {
        const m = JSON.parse(ev.data);
        if (m.type === 'error') resolve(m);
      });
      s.sig.ws.send(JSON.stringify({ type: 'host', action: 'remove', peer }));
      setTimeout(() => resolve(null), 5000);
    }), catId);
    console.log('non-host refused:', JSON.stringify(refusal));
    assert.equal(refusal?.code, 'notHost');
    assert.match(refusal.message, /only the room's host can do that; the host is Ann/);
    await sleep(500);
    assert.equal(await cat.isVisible('#failed'), false, 'Cat is still in the call');

    // Ann mutes Bob with the control on his tile.
    const bobId = await idOf(ann, 'Bob');
    await ann.click(`#tiles figure[data-peer="${bobId}"] .host-controls button[data-action="mute"]`);
    await bob.waitForSelector('#mic.held', { timeout: 5000 });
    const note = await bob.textContent('#held-note');
    console.log('Bob sees:', note);
    assert.match(note || '', /Your microphone was muted by the host \(Ann\)/);
    assert.equal(await bob.getAttribute('#mic', 'title'), 'Muted by the host');
    assert.equal(await bob.getAttribute('#mic', 'aria-pressed'), 'false');
    // Cat's packets from Bob stop rising (a few may be in flight), and stay stopped.
    let last = await audioPacketsFrom(cat, 'Bob');
    await waitFor(async () => {
      const now = await audioPacketsFrom(cat, 'Bob');
      const still = now === last;
      last = now;
      return still;
    }, 5000, "Cat's packets from Bob stop");
    await sleep(1500);
    const after = await audioPacketsFrom(cat, 'Bob');
    console.log(`Cat's audio packets from Bob: ${last}, 1.5 s later ${after}`);
    assert.equal(after, last, "no more of Bob's audio reaches Cat");
    // Bob presses his mic: nothing turns on, and the page says why.
    await bob.click('#mic');
    assert.equal(await bob.getAttribute('#mic', 'aria-pressed'), 'false');
    assert.match((await bob.textContent('#held-note')) || '', /when the host allows it/);
    await bob.screenshot({ path: join(artifacts, 'host-muted.png') });

    // Ann locks the room; everyone sees it.
    await ann.click('#lock');
    for (const p of pages) await p.waitForSelector('#locked:not([hidden])', { timeout: 5000 });
    await ann.screenshot({ path: join(artifacts, 'host-controls.png') });
    // Ann removes Cat: her page says so; joining again meets the lock.
    await ann.click(`#tiles figure[data-peer="${catId}"] .host-controls button[data-action="remove"]`);
    await cat.waitForSelector('#failed:not([hidden])', { timeout: 5000 });
    const removed = await cat.textContent('#failed-reason');
    console.log('Cat sees:', removed);
    assert.match(removed || '', /the host removed you from the room/i);
    await waitFor(async () => !(await idOf(bob, 'Cat')), 5000, 'Cat gone from Bob\'s page');
    await Promise.all([cat.waitForEvent('load'), cat.click('#rejoin')]);
    await cat.waitForSelector('#failed:not([hidden])', { timeout: 15000 });
    const locked = await cat.textContent('#failed-reason');
    console.log('Cat rejoining sees:', locked);
    assert.match(locked || '', /room "board" is locked by its host/);
  } catch (e) {
    for (const p of pages) console.log((p.logs || []).join('\n'));
    console.log(server.logs().slice(-4000));
    throw e;
  } finally {
    for (const p of pages) await p.context().close();
  }
});
