// The pages' languages in Chromium: the start page follows the browser's language
// (Playwright's `locale`), the EN / 中文 switch changes it in place and is remembered
// on reload; a call page in Chinese and in English at phone size (screenshots); and a
// viewer of an automatic room whose participants talk directly is told it watches
// through the server, with no tile claiming a direct path. One Chromium, in a fresh
// network namespace with only loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launchBrowser, newPage, waitFor, gotoRetry, repoRoot, canUseNetns, loopbackNamespace } from './lib.mjs';

const artifacts = join(repoRoot, 'tests', 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });
const phone = { width: 390, height: 844 };

const skip = canUseNetns() ? false : 'needs root to create a network namespace';
let ns;
let server;
let browser;

before(async () => {
  if (skip) return;
  ns = loopbackNamespace('i18n');
  server = await startServer([], { netns: ns.name });
  browser = await launchBrowser([], { netns: ns.name });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  ns?.remove();
});

/** What a person reads on the start page. */
async function startTexts(page) {
  return page.evaluate(() => ({
    lang: document.documentElement.lang,
    languages: navigator.languages.join(','),
    join: document.getElementById('join')?.textContent,
    lead: document.querySelector('.lead')?.textContent,
    room: document.querySelector('label span')?.textContent,
    pressed: document.querySelector('.card .lang-switch [aria-pressed="true"]')?.textContent,
  }));
}

test('the start page is in the browser\'s language: Chinese for zh-CN, English for en-US', { skip }, async () => {
  const zh = await newPage(browser, phone, { locale: 'zh-CN' });
  const en = await newPage(browser, phone, { locale: 'en-US' });
  try {
    await gotoRetry(zh, `${server.url}?room=hall`);
    await gotoRetry(en, `${server.url}?room=hall`);
    const z = await startTexts(zh);
    const e = await startTexts(en);
    console.log('zh-CN:', z, '\nen-US:', e);
    assert.match(z.languages, /^zh-CN/);
    assert.deepEqual({ lang: z.lang, join: z.join, room: z.room, pressed: z.pressed }, { lang: 'zh-CN', join: '加入通话', room: '房间', pressed: '中文' });
    assert.match(z.lead, /局域网内的视频通话/);
    assert.deepEqual({ lang: e.lang, join: e.join, room: e.room, pressed: e.pressed }, { lang: 'en', join: 'Join call', room: 'Room', pressed: 'EN' });
    assert.match(e.lead, /^Video calls on your network/);
  } finally {
    await zh.context().close();
    await en.context().close();
  }
});

test('the EN / 中文 switch changes the page in place and is remembered on reload', { skip }, async () => {
  const page = await newPage(browser, phone, { locale: 'en-US' });
  try {
    await gotoRetry(page, `${server.url}?room=hall`);
    assert.equal(await page.textContent('#join'), 'Join call');
    await page.fill('#name', 'Lan');
    await page.click('.card .lang-switch button[data-lang="zh-CN"]');
    assert.equal(await page.textContent('#join'), '加入通话');
    assert.equal(await page.inputValue('#name'), 'Lan', 'switching keeps what was typed');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    await page.reload();
    assert.equal(await page.textContent('#join'), '加入通话', 'remembered after a reload');
    assert.equal(await page.evaluate(() => localStorage.getItem('lanrelay.lang')), 'zh-CN');
    // The install page shares the choice.
    await page.goto(`${server.url}trust`);
    assert.equal(await page.textContent('details[data-platform="xiaomi"] summary'), '小米 / 红米（HyperOS、MIUI）');
    assert.match(await page.textContent('details[data-platform="xiaomi"] li:nth-child(2)'), /密码与安全 → 系统安全（或隐私）→ 加密与凭据 → 安装证书 → CA 证书/);
    await page.click('.lang-switch button[data-lang="en"]');
    assert.match(await page.textContent('details[data-platform="xiaomi"] li:nth-child(2)'), /Password & security → Privacy → Encryption & credentials → Install a certificate → CA certificate/);
    await page.goto(`${server.url}?room=hall`);
    assert.equal(await page.textContent('#join'), 'Join call', 'English again, remembered');
  } finally {
    await page.context().close();
  }
});

test('a call page in Chinese and English at phone size; a viewer watches through the server', { skip }, async () => {
  const alice = await newPage(browser, { width: 640, height: 480 }, { locale: 'en-US' });
  const bo = await newPage(browser, phone, { locale: 'zh-CN' });
  let viewer;
  try {
    await gotoRetry(alice, `${server.url}?room=lang&name=Alice&autojoin=1`);
    await gotoRetry(bo, `${server.url}?room=lang&name=Bo&autojoin=1`);
    // The automatic room moves to the direct path between the two.
    await waitFor(async () => (await bo.textContent('#status-text')) === '已连接 · 直连（点对点）', 40000, 'Bo connected directly, said in Chinese');
    await waitFor(async () => (await bo.textContent('[data-peer] .path-badge')) === '直连', 10000, 'the tile says direct');
    const zh = await bo.evaluate(() => ({
      reason: document.getElementById('path-reason')?.textContent,
      leave: document.querySelector('#hangup .label')?.textContent,
      micTitle: document.getElementById('mic')?.title,
      you: document.querySelector('#self-tile .who')?.textContent,
      count: document.getElementById('count')?.textContent,
    }));
    console.log('Bo, in Chinese:', zh);
    assert.match(zh.reason, /^直连：[\u4e00-\u9fff]/);
    assert.deepEqual({ leave: zh.leave, micTitle: zh.micTitle, you: zh.you, count: zh.count }, { leave: '挂断', micTitle: '静音', you: '我', count: '· 2 人通话中' });
    await bo.screenshot({ path: join(artifacts, 'call-phone-zh.png') });

    await bo.click('.bar .lang-switch button[data-lang="en"]');
    const en = await bo.evaluate(() => ({
      status: document.getElementById('status-text')?.textContent,
      reason: document.getElementById('path-reason')?.textContent,
      leave: document.querySelector('#hangup .label')?.textContent,
      badge: document.querySelector('[data-peer] .path-badge')?.textContent,
    }));
    console.log('Bo, switched to English:', en);
    assert.equal(en.status, 'Connected · direct (peer to peer)');
    assert.match(en.reason, /^Direct: [a-z]/);
    assert.deepEqual({ leave: en.leave, badge: en.badge }, { leave: 'Leave', badge: 'direct' });
    await bo.screenshot({ path: join(artifacts, 'call-phone-en.png') });

    // A viewer of this room receives both through the server, whatever path the two
    // use between them.
    viewer = await newPage(browser, phone, { locale: 'en-US' });
    await gotoRetry(viewer, `${server.url}?room=lang&role=viewer`);
    await waitFor(async () => (await viewer.textContent('#status-text'))?.startsWith('Connected'), 20000, 'viewer connected');
    await waitFor(() => viewer.evaluate(() => {
      const peers = [.../** @type {any} */ (window).lanrelay.session.peers.values()];
      return peers.length === 2 && peers.some((p) => p.path === 'direct');
    }), 10000, 'the viewer knows the participants talk directly');
    const seen = await viewer.evaluate(() => ({
      status: document.getElementById('status-text')?.textContent,
      reason: document.getElementById('path-reason')?.textContent,
      badges: [...document.querySelectorAll('[data-peer] .path-badge')].map((b) => b.textContent),
    }));
    console.log('viewer:', seen);
    assert.equal(seen.status, 'Connected · watching via server');
    assert.match(seen.reason, /^Watching through the server/);
    assert.doesNotMatch(seen.reason, /more than two|direct/i);
    assert.deepEqual(seen.badges, ['', ''], 'no tile claims a path for the viewer');
  } catch (e) {
    for (const p of [alice, bo, viewer]) if (p) console.log(p.logs.join('\n'));
    console.log(server.logs().slice(-3000));
    throw e;
  } finally {
    for (const p of [alice, bo, viewer]) await p?.context().close();
  }
});
