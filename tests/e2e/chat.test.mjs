// Browser end-to-end: the chat panel. Two participants and a viewer page in one
// Chromium (a fresh network namespace with only loopback): a message typed on one page
// appears on the others and on the viewer page, counted as unread on the closed
// panels; `<script>` in a message is shown as text and runs nothing; a late joiner
// sees the history; a message written while the page has no signaling connection is
// kept with a notice, not lost; a flood from one page is refused with a clear sentence
// while the other page's messages still arrive.
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
  ns = loopbackNamespace('chat');
  server = await startServer(['--chat-rate', '5'], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

/** A page in the room that records any dialog (an `alert` would be one). */
async function open(url, viewport) {
  const page = await newPage(browser, viewport);
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  await gotoRetry(page, url);
  await page.waitForSelector('#chat-button:not([hidden])', { timeout: 15000 });
  return page;
}

/** The unread count on the chat button ('' when none is shown). */
async function unread(page) {
  return page.$eval('#chat-button .chat-unread', (b) => (b.hidden ? '' : b.textContent || ''));
}

/** The messages of the chat panel: who and text, as shown. */
async function shown(page) {
  return page.$$eval('#chat .chat-msg', (items) => items.map((li) => ({
    who: li.querySelector('.chat-who')?.firstChild?.textContent || '',
    text: li.querySelector('.chat-text')?.textContent || '',
  })));
}

async function say(page, text) {
  await page.fill('#chat input', text);
  await page.press('#chat input', 'Enter');
}

test('chat: messages reach every page and the viewer, as text, with history and limits', { skip }, async () => {
  const room = `${server.url}?room=chat&autojoin=1&mode=relay`;
  const ann = await open(`${room}&name=Ann`);
  const bob = await open(`${room}&name=Bob`, { width: 390, height: 844 });
  const viewer = await open(`${server.url}?room=chat&role=viewer`);
  const pages = [ann, bob, viewer];
  try {
    for (const p of pages) assert.equal(await unread(p), '', 'nothing unread in a new room');
    await ann.click('#chat-button');
    await ann.waitForSelector('#chat:not([hidden])');
    const evil = '<script>window.ran = 1; alert(1)</script><img src=x onerror="window.ran = 2">';
    await say(ann, evil);
    await waitFor(async () => (await unread(bob)) === '1', 5000, "Bob's unread count");
    await waitFor(async () => (await unread(viewer)) === '1', 5000, "the viewer's unread count");
    assert.equal(await unread(ann), '', 'the open panel counts nothing');

    await bob.click('#chat-button');
    await waitFor(async () => (await shown(bob)).length === 1, 5000, "Bob's panel");
    assert.deepEqual(await shown(bob), [{ who: 'Ann', text: evil }], 'shown as the characters typed');
    assert.equal(await unread(bob), '', 'opening the panel reads them');
    await bob.screenshot({ path: join(artifacts, 'chat-phone.png') });
    await viewer.click('#chat-button');
    assert.deepEqual(await shown(viewer), [{ who: 'Ann', text: evil }]);
    // Viewers read only (the server runs without --viewers-can-chat).
    assert.equal(await viewer.isVisible('#chat form'), false, 'no input for the viewer');
    assert.equal(await viewer.isVisible('#chat .chat-readonly'), true, 'the viewer is told why');
    for (const p of pages) {
      assert.equal(await p.$$eval('#chat script, #chat img', (els) => els.length), 0, 'no element made from a message');
      assert.equal(await p.evaluate(() => /** @type {any} */ (window).ran), undefined, 'nothing ran');
      assert.deepEqual(p.dialogs, [], 'no alert');
    }

    await say(bob, 'hi Ann, nice to see you');
    await waitFor(async () => (await shown(ann)).length === 2, 5000, "Bob's message on Ann's page");
    assert.deepEqual((await shown(ann))[1], { who: 'Bob', text: 'hi Ann, nice to see you' });
    assert.deepEqual((await shown(ann))[0].who, 'You');

    // A late joiner: the history, counted as unread until the panel opens.
    const cat = await open(`${room}&name=Cat`);
    pages.push(cat);
    await waitFor(async () => (await unread(cat)) === '2', 5000, "the late joiner's unread count");
    await cat.click('#chat-button');
    assert.deepEqual(await shown(cat), [{ who: 'Ann', text: evil }, { who: 'Bob', text: 'hi Ann, nice to see you' }]);

    // Without a signaling connection (the page reconnecting), a message is not lost
    // silently: Bob's page says it was not sent and keeps his words to send again.
    await bob.evaluate(() => {
      const sig = /** @type {any} */ (window).lanrelay.session.sig;
      sig.send = () => false;
    });
    await say(bob, 'sent while offline');
    await bob.waitForSelector('#chat .chat-notice:not([hidden])', { timeout: 5000 });
    assert.match(await bob.$eval('#chat .chat-notice', (n) => n.textContent || ''), /Not connected to the server/);
    assert.equal(await bob.$eval('#chat input', (i) => /** @type {HTMLInputElement} */ (i).value), 'sent while offline');
    await bob.evaluate(() => {
      delete /** @type {any} */ (window).lanrelay.session.sig.send;
    });
    await bob.press('#chat input', 'Enter');
    await waitFor(async () => (await shown(cat)).some((m) => m.text === 'sent while offline'), 5000, "Bob's message, sent again");
    assert.equal(await bob.$eval('#chat input', (i) => /** @type {HTMLInputElement} */ (i).value), '');
    assert.ok(await bob.$eval('#chat .chat-notice', (n) => /** @type {HTMLElement} */ (n).hidden), 'the notice goes');

    // A flood from Ann (over --chat-rate 5 in 10 s) is refused on her page with the
    // limit in words; Bob's message still reaches her. The notice goes away when one
    // of her messages is sent again, which can be the flood's last: her first message
    // may leave the 10 s window during the flood. So every time it shows is recorded.
    await ann.evaluate(() => {
      const w = /** @type {any} */ (window);
      const n = /** @type {HTMLElement} */ (document.querySelector('#chat .chat-notice'));
      w.notices = [];
      new MutationObserver(() => {
        if (!n.hidden && n.getClientRects().length) w.notices.push(n.textContent);
      }).observe(n, { attributes: true, childList: true, characterData: true, subtree: true });
    });
    for (let i = 0; i < 8; i++) await say(ann, `flood ${i}`);
    const notices = async () => ann.evaluate(() => /** @type {string[]} */ (/** @type {any} */ (window).notices));
    await waitFor(async () => (await notices()).length > 0, 5000, "the refusal on Ann's page");
    for (const notice of await notices()) {
      assert.match(notice || '', /too many chat messages: at most 5 in 10 seconds/);
    }
    await say(bob, 'still reading you');
    await waitFor(async () => (await shown(ann)).some((m) => m.text === 'still reading you'), 5000, "Bob's message after the flood");
    await waitFor(async () => (await shown(cat)).some((m) => m.text === 'still reading you'), 5000, "Bob's message on Cat's page");
    const floods = (await shown(cat)).filter((m) => m.text.startsWith('flood'));
    // Five in 10 s: her first message counts too, unless it is more than 10 s old.
    assert.ok(floods.length >= 4 && floods.length <= 5, `four or five of Ann's eight: ${JSON.stringify(floods)}`);
    await ann.screenshot({ path: join(artifacts, 'chat-laptop.png') });
  } catch (e) {
    for (const p of pages) console.log(p.logs.join('\n'));
    console.log(server.logs().split('\n').filter((l) => !/bandwidth estimate|layer |keyframe/.test(l)).slice(-80).join('\n'));
    throw e;
  } finally {
    for (const p of pages) await p.context().close();
  }
});
