// @ts-check
/**
 * The pages' languages: English and Simplified Chinese, one message table each
 * (lang/en.js, lang/zh-CN.js; no build step). The language is the one remembered from
 * the page's switch (localStorage), else the first of the browser's languages
 * (`navigator.languages`) that lanrelay has, else English.
 *
 * Static text is marked in the HTML and filled in by `applyTranslations`:
 * - `data-i18n="key"`: the element's text;
 * - `data-i18n-html="key"`: the element's markup, for the few messages with <b> or
 *   <code> in them (only ever from these tables, never with parameters);
 * - `data-i18n-attr="title:key; aria-label:key2"`: attributes.
 * Dynamic text goes through `t(key, params)`. Switching language updates the page in
 * place and fires `langchange` on `document`, for the code that renders dynamic text.
 *
 * Two kinds of text come from elsewhere in English: the server's error messages, shown
 * from their stable `code` (`errorText`), and the call's reasons (why a path was
 * chosen, why a call failed), which policy.js and session.js write in English because
 * they also go over the wire and into logs; `reasonText` recognises them from the
 * English table's `reason.*` templates and renders them in the page's language.
 * Anything it does not recognise stays in English.
 */
import en from './lang/en.js';
import zhCN from './lang/zh-CN.js';

/** @typedef {'en' | 'zh-CN'} Lang */

/** @type {Record<Lang, Record<string, string>>} */
export const TABLES = { en, 'zh-CN': zhCN };
/** @type {Lang[]} */
export const LANGS = ['en', 'zh-CN'];
/** What the switch shows for each language (each in itself). */
export const LANG_NAMES = { en: 'EN', 'zh-CN': '中文' };
const STORE_KEY = 'lanrelay.lang';

/**
 * The language to show: the remembered choice, else the first of the browser's
 * languages that has a table (any Chinese reads the Simplified table), else English.
 * @param {string | null | undefined} stored
 * @param {readonly string[] | undefined} languages navigator.languages
 * @returns {Lang}
 */
export function pickLang(stored, languages) {
  if (stored && LANGS.includes(/** @type {Lang} */ (stored))) return /** @type {Lang} */ (stored);
  for (const l of languages || []) {
    const low = String(l).toLowerCase();
    if (low === 'zh' || low.startsWith('zh-')) return 'zh-CN';
    if (low === 'en' || low.startsWith('en-')) return 'en';
  }
  return 'en';
}

/** @returns {string | null} */
function stored() {
  try {
    return globalThis.localStorage?.getItem(STORE_KEY) ?? null;
  } catch {
    return null;
  }
}

/** @type {Lang} */
let current = pickLang(stored(), globalThis.navigator?.languages);

/** The language the pages are shown in. */
export function lang() {
  return current;
}

/**
 * The message `key` in the current language (English when that table lacks it, the
 * key itself when no table has it), with `{name}` replaced by `params.name`.
 * @param {string} key
 * @param {Record<string, string | number>} [params]
 */
export function t(key, params) {
  const text = TABLES[current][key] ?? en[key] ?? key;
  return params ? fill(text, params) : text;
}

/**
 * @param {string} text
 * @param {Record<string, string | number>} params
 */
function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (m, name) => (Object.hasOwn(params, name) ? String(params[name]) : m));
}

/**
 * Switches the pages to `l`, remembers it, and updates the page in place.
 * @param {Lang} l
 */
export function setLang(l) {
  if (!LANGS.includes(l)) return;
  current = l;
  try {
    globalThis.localStorage?.setItem(STORE_KEY, l);
  } catch {
    // Private mode without storage: the choice holds for this page only.
  }
  if (typeof document === 'undefined') return;
  applyTranslations(document);
  document.dispatchEvent(new CustomEvent('langchange', { detail: { lang: l } }));
}

/**
 * Fills in every marked element under `root` (see the top of this file).
 * @param {Document | Element} root
 */
export function applyTranslations(root) {
  if ('documentElement' in root) root.documentElement.lang = current;
  root.querySelectorAll('[data-i18n]').forEach((el) => {
    el.textContent = t(/** @type {string} */ (el.getAttribute('data-i18n')));
  });
  root.querySelectorAll('[data-i18n-html]').forEach((el) => {
    // Markup from our own tables only (no parameters, nothing from the network).
    el.innerHTML = t(/** @type {string} */ (el.getAttribute('data-i18n-html')));
  });
  root.querySelectorAll('[data-i18n-attr]').forEach((el) => {
    for (const [attr, key] of attrPairs(el.getAttribute('data-i18n-attr') || '')) el.setAttribute(attr, t(key));
  });
  root.querySelectorAll('.lang-switch button').forEach((b) => {
    b.setAttribute('aria-pressed', String(/** @type {HTMLElement} */ (b).dataset.lang === current));
  });
}

/**
 * `"title:a.b; aria-label:c"` → `[['title', 'a.b'], ['aria-label', 'c']]`.
 * @param {string} spec
 * @returns {[string, string][]}
 */
export function attrPairs(spec) {
  return spec.split(';').map((p) => p.trim()).filter(Boolean).map((p) => {
    const i = p.indexOf(':');
    return /** @type {[string, string]} */ ([p.slice(0, i).trim(), p.slice(i + 1).trim()]);
  });
}

/**
 * Puts the language switch (EN / 中文) into every `.lang-switch` element of the page.
 * @param {Document} doc
 */
export function mountLangSwitches(doc) {
  doc.querySelectorAll('.lang-switch').forEach((box) => {
    box.replaceChildren(...LANGS.map((l) => {
      const b = doc.createElement('button');
      b.type = 'button';
      b.dataset.lang = l;
      b.lang = l;
      b.textContent = LANG_NAMES[l];
      b.setAttribute('aria-pressed', String(l === current));
      b.addEventListener('click', () => setLang(l));
      return b;
    }));
  });
}

/**
 * A server error for people: the translation of its stable `code`, else the server's
 * own sentence. In English the server's sentence is kept: it names the room, the
 * limit, the character.
 * @param {string} code
 * @param {string} message
 */
export function errorText(code, message) {
  if (current === 'en') return message || t(`error.${code}`);
  const key = `error.${code}`;
  return Object.hasOwn(TABLES[current], key) ? t(key) : message;
}

/** The English `reason.*` templates as patterns, most specific (fewest holes) first. */
const REASONS = Object.entries(en)
  .filter(([k]) => k.startsWith('reason.'))
  .map(([key, text]) => {
    const names = [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    const parts = text.split(/\{\w+\}/g).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    return { key, names, re: new RegExp(`^${parts.join('(.+?)')}$`) };
  })
  .sort((a, b) => a.names.length - b.names.length);

/**
 * A reason written in English by the session or policy (or a server error message
 * already seen, in `known`: message → code), in the current language. Parameters that
 * are reasons themselves are translated too. Unknown text is returned as it is.
 * @param {string | undefined} text
 * @param {Map<string, string>} [known]
 * @returns {string}
 */
export function reasonText(text, known, depth = 0) {
  if (!text || current === 'en') return text || '';
  const code = known?.get(text);
  if (code) return errorText(code, text);
  if (depth > 3) return text;
  for (const { key, names, re } of REASONS) {
    const m = re.exec(text);
    if (!m) continue;
    /** @type {Record<string, string>} */
    const params = {};
    names.forEach((n, i) => (params[n] = reasonText(m[i + 1], known, depth + 1)));
    return t(key, params);
  }
  return text;
}

if (typeof document !== 'undefined') {
  applyTranslations(document);
  mountLangSwitches(document);
}
