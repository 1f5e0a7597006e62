// The pages' message tables (web/lang/en.js, web/lang/zh-CN.js) and web/i18n.js: both
// tables have exactly the same keys and parameters; every key the pages use (data-i18n
// attributes in web/*.html, t('...') and key literals in web/*.js, the server's error
// codes of docs/protocol.md) is in them; the language is picked from the browser's;
// reasons written in English by policy.js come out in Chinese.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import en from '../../web/lang/en.js';
import zhCN from '../../web/lang/zh-CN.js';
import * as i18n from '../../web/i18n.js';
import * as policy from '../../web/policy.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const web = join(root, 'web');
const read = (/** @type {string} */ f) => readFileSync(join(web, f), 'utf8');
const files = (/** @type {string} */ ext) => readdirSync(web).filter((f) => f.endsWith(ext));
/** @param {string} s */
const params = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('English and Chinese have the same keys, none empty, with the same parameters', () => {
  const missing = Object.keys(en).filter((k) => !Object.hasOwn(zhCN, k));
  const extra = Object.keys(zhCN).filter((k) => !Object.hasOwn(en, k));
  assert.deepEqual(missing, [], 'keys missing in zh-CN.js');
  assert.deepEqual(extra, [], 'keys in zh-CN.js that en.js does not have');
  for (const [k, v] of Object.entries(en)) {
    assert.ok(v.trim() && zhCN[k].trim(), `${k} is empty`);
    assert.deepEqual(params(zhCN[k]), params(v), `${k}: the same parameters in both`);
  }
});

test('the Chinese table is Chinese: no key is left as its English text', () => {
  // Names that stay as they are in both languages.
  const same = new Set(['tile.live']);
  const untranslated = Object.keys(en).filter((k) => !same.has(k) && zhCN[k] === en[k]);
  assert.deepEqual(untranslated, []);
  for (const [k, v] of Object.entries(zhCN)) {
    if (same.has(k)) continue;
    // Chinese characters, or at least Chinese punctuation (“Android（Chrome）”).
    assert.match(v, /[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]/, `${k} is written in Chinese`);
  }
});

test('every data-i18n key of web/*.html is in the tables', () => {
  const html = files('.html');
  assert.ok(html.includes('index.html') && html.includes('trust.html'));
  let used = 0;
  for (const f of html) {
    const text = read(f);
    for (const m of text.matchAll(/data-i18n(?:-html)?="([^"]+)"/g)) {
      used += 1;
      assert.ok(Object.hasOwn(en, m[1]), `${f}: data-i18n key ${m[1]} is not in the tables`);
    }
    for (const m of text.matchAll(/data-i18n-attr="([^"]+)"/g)) {
      for (const [attr, key] of i18n.attrPairs(m[1])) {
        used += 1;
        assert.ok(attr && Object.hasOwn(en, key), `${f}: data-i18n-attr ${attr}:${key} is not in the tables`);
      }
    }
  }
  assert.ok(used > 80, `the pages are marked (${used} keys)`);
});

test('every t(\'...\') key and key literal of web/*.js is in the tables', () => {
  const prefixes = new Set(Object.keys(en).map((k) => k.split('.')[0]));
  let used = 0;
  for (const f of files('.js')) {
    const text = read(f);
    for (const m of text.matchAll(/\bt\(\s*'([^']+)'/g)) {
      used += 1;
      assert.ok(Object.hasOwn(en, m[1]), `${f}: t('${m[1]}') is not in the tables`);
    }
    // Keys chosen before t() is called ({mic: on ? 'call.micOff' : ...}): any quoted
    // 'prefix.name' with a table's prefix.
    for (const m of text.matchAll(/'([a-z]+)\.([A-Za-z0-9]+)'/g)) {
      if (!prefixes.has(m[1])) continue;
      assert.ok(Object.hasOwn(en, `${m[1]}.${m[2]}`), `${f}: '${m[1]}.${m[2]}' is not in the tables`);
    }
    // Keys built from a value: t(`mode.${...}`) and the like.
    for (const m of text.matchAll(/\bt\(\s*`([a-z]+)\.\$\{/g)) {
      assert.ok(Object.keys(en).some((k) => k.startsWith(`${m[1]}.`)), `${f}: no ${m[1]}.* keys`);
    }
  }
  assert.ok(used > 15, `the scripts use the tables (${used} calls)`);
  for (const mode of policy.MODES) assert.ok(Object.hasOwn(en, `mode.${mode}`), `mode.${mode}`);
});

test('every error code of docs/protocol.md has a message in both languages', () => {
  const doc = readFileSync(join(root, 'docs', 'protocol.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Error codes'));
  const codes = [...section.slice(0, section.indexOf('\n## ', 3)).matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]).filter((c) => c !== 'code');
  assert.ok(codes.length >= 10, `codes found: ${codes}`);
  for (const code of codes) assert.ok(Object.hasOwn(en, `error.${code}`), `error.${code} missing`);
  const known = new Set(codes.map((c) => `error.${c}`));
  const stale = Object.keys(en).filter((k) => k.startsWith('error.') && !known.has(k));
  assert.deepEqual(stale, [], 'messages for codes the server does not send');
});

test('the language comes from the remembered choice, else the browser\'s languages, else English', () => {
  assert.equal(i18n.pickLang(null, ['zh-CN', 'en']), 'zh-CN');
  assert.equal(i18n.pickLang(null, ['zh']), 'zh-CN');
  assert.equal(i18n.pickLang(null, ['zh-TW']), 'zh-CN');
  assert.equal(i18n.pickLang(null, ['en-US', 'zh-CN']), 'en');
  assert.equal(i18n.pickLang(null, ['fr-FR', 'zh-CN']), 'zh-CN', 'the first language lanrelay has');
  assert.equal(i18n.pickLang(null, ['fr-FR']), 'en');
  assert.equal(i18n.pickLang(null, []), 'en');
  assert.equal(i18n.pickLang(null, undefined), 'en');
  assert.equal(i18n.pickLang('en', ['zh-CN']), 'en', 'the switch wins');
  assert.equal(i18n.pickLang('zh-CN', ['en-US']), 'zh-CN');
  assert.equal(i18n.pickLang('xx', ['zh-CN']), 'zh-CN', 'an unknown stored value is ignored');
});

test('t fills parameters; a missing key falls back to English, then to the key', () => {
  i18n.setLang('zh-CN');
  try {
    assert.equal(i18n.lang(), 'zh-CN');
    assert.equal(i18n.t('call.inCall', { n: 3 }), '· 3 人通话中');
    assert.equal(i18n.t('no.such'), 'no.such');
    i18n.setLang('en');
    assert.equal(i18n.t('call.inCall', { n: 3 }), '· 3 in call');
  } finally {
    i18n.setLang('en');
  }
});

test('server errors: by code in Chinese, the server\'s own sentence in English and for unknown codes', () => {
  const message = 'room "kitchen" is full (8 participants)';
  assert.equal(i18n.errorText('roomFull', message), message);
  i18n.setLang('zh-CN');
  try {
    assert.equal(i18n.errorText('roomFull', message), '这个房间已满。');
    assert.equal(i18n.errorText('somethingNew', 'a new error'), 'a new error');
    const known = new Map([[message, 'roomFull']]);
    assert.equal(i18n.reasonText(message, known), '这个房间已满。');
    assert.equal(i18n.reasonText(`${message}; gave up after 5 attempts`, known), '这个房间已满。；已尝试 5 次，放弃重连');
  } finally {
    i18n.setLang('en');
  }
});

test('reasons written in English by policy.js are shown in Chinese', () => {
  const f = {
    mode: 'auto', role: 'participant', id: 2, peerCount: 1, onlyPeer: 1, relayChosen: false, hasRelay: true,
    path: 'relay', pathReason: '', direct: null, retryPending: false, forced: null, peerUsing: undefined, viewers: 0,
  };
  const reasons = [
    policy.GROUP_REASON,
    policy.RECORDING_REASON,
    policy.REFUSE_REASON,
    policy.NETWORK_CHANGED,
    `reconnected after the ${policy.NETWORK_CHANGED}`,
    policy.directLinkTrouble('failed', '').failure,
    policy.directLinkTrouble('broken', 'the connection was interrupted').failure,
    policy.peerClosedDirect('delivering', policy.REFUSE_REASON).close,
    policy.onRelayState(/** @type {any} */ ({ ...f, path: null }), 'connected', undefined).reason,
    policy.onRelayState(/** @type {any} */ (f), 'failed', undefined).reason,
  ];
  assert.equal(reasons.length, new Set(reasons).size);
  i18n.setLang('zh-CN');
  try {
    for (const r of reasons) {
      assert.ok(r, 'a reason');
      const zh = i18n.reasonText(r);
      assert.doesNotMatch(zh, /[a-z]{3,}/, `"${r}" → "${zh}" is translated`);
      assert.match(zh, /[\u4e00-\u9fff]/);
    }
    assert.equal(i18n.reasonText(policy.GROUP_REASON), '超过两人，通话保持服务器中转');
    assert.equal(i18n.reasonText('no direct media within 10 s (ICE checking): the two devices cannot reach each other'),
      '10 秒内没有直连音视频（ICE checking）：两台设备无法互相访问');
    // What blocked.test.mjs sees on a network where the two cannot reach each other.
    assert.equal(i18n.reasonText('direct connection failed: no direct media within 10 s (ICE checking): the two devices cannot reach each other'),
      '直连失败：10 秒内没有直连音视频（ICE checking）：两台设备无法互相访问');
    assert.equal(i18n.reasonText('something nobody wrote a template for'), 'something nobody wrote a template for');
  } finally {
    i18n.setLang('en');
  }
  assert.equal(i18n.reasonText(policy.GROUP_REASON), policy.GROUP_REASON, 'English stays as written');
});
