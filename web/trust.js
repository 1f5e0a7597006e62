// @ts-check
/**
 * The install page (/trust): fills in lanrelay's CA name and fingerprints from
 * /api/trust, puts the visitor's platform's steps first (and opens them), and shows a
 * QR code of this page on the plain-HTTP helper for another device. The steps are in
 * the HTML, so the page is useful without this script too; i18n.js shows them in the
 * page's language.
 */
import { t } from './i18n.js';

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * Which platform's steps to show first.
 * @param {string} ua navigator.userAgent
 * @param {number} touchPoints navigator.maxTouchPoints
 * @returns {'ios' | 'xiaomi' | 'android' | 'windows' | 'macos' | 'linux' | null}
 */
export function detectPlatform(ua, touchPoints) {
  if (/iPhone|iPad|iPod/.test(ua)) return 'ios';
  // iPadOS asks for the desktop site: a "Macintosh" with a touch screen.
  if (/Macintosh/.test(ua) && touchPoints > 1) return 'ios';
  // Xiaomi's own browser and many others name the maker; Chrome's reduced user agent
  // does not (then the Android steps come first and Xiaomi's right after them).
  if (/Android/.test(ua) && /XiaoMi|Xiaomi|Redmi|MIUI|HyperOS|POCO/i.test(ua)) return 'xiaomi';
  if (/Android/.test(ua)) return 'android';
  if (/Windows/.test(ua)) return 'windows';
  if (/Macintosh|Mac OS X/.test(ua)) return 'macos';
  if (/Linux|X11|CrOS/.test(ua)) return 'linux';
  return null;
}

/** @param {string} host URL.hostname */
function isLocalHost(host) {
  return host === 'localhost' || host === '[::1]' || host === '::1' || host.startsWith('127.');
}

/**
 * Of `urls`, the one on the host this page was opened at, else one another device
 * can reach, else the first.
 * @param {string[]} urls
 */
function pickUrl(urls) {
  const same = urls.find((u) => new URL(u).hostname === location.hostname);
  return same || urls.find((u) => !isLocalHost(new URL(u).hostname)) || urls[0] || null;
}

function showPlatform() {
  const platform = detectPlatform(navigator.userAgent, navigator.maxTouchPoints || 0);
  document.body.dataset.platform = platform || 'unknown';
  if (!platform) return;
  const box = $('platforms');
  const mine = /** @type {HTMLDetailsElement | null} */ (box.querySelector(`[data-platform="${platform}"]`));
  if (!mine) return;
  // Android phones: the generic steps and Xiaomi's, side by side at the top.
  const sibling = { android: 'xiaomi', xiaomi: 'android' }[platform];
  const next = sibling ? box.querySelector(`[data-platform="${sibling}"]`) : null;
  if (next) box.prepend(next);
  box.prepend(mine);
  mine.open = true;
  mine.dataset.yours = '1';
  markYours();
  document.addEventListener('langchange', markYours);
  if (platform === 'ios') {
    // The profile is what iOS installs; make it the main button.
    $('dl-mobileconfig').classList.add('primary');
    $('dl-crt').classList.remove('primary');
    $('dl-mobileconfig').after($('dl-crt'));
  }
}

/** The "your device" badge and the note about the order, in the page's language. */
function markYours() {
  const summary = document.querySelector('[data-yours] summary');
  if (!summary) return;
  summary.querySelector('.yours')?.remove();
  const badge = document.createElement('span');
  badge.className = 'yours';
  badge.textContent = t('trust.yours');
  summary.append(' ', badge);
  $('platform-note').textContent = t('trust.yoursFirst');
}

async function load() {
  /** @type {any} */
  let info;
  try {
    const r = await fetch('/api/trust', { cache: 'no-store' });
    info = await r.json();
  } catch {
    return;
  }
  if (info.ca) {
    $('ca-name').textContent = `“${info.ca.name}”`;
    $('ios-ca-name').textContent = info.ca.name;
    $('sha256').textContent = info.ca.sha256;
    $('sha1').textContent = info.ca.sha1;
  } else {
    $('with-ca').hidden = true;
    $('no-ca').hidden = false;
    const issuer = () => ($('server-issuer').textContent = t('trust.issuedBy', { issuer: info.server.issuer }));
    issuer();
    document.addEventListener('langchange', issuer);
  }
  // "Open lanrelay": the HTTPS page on the host this page was opened at.
  const https = pickUrl(info.httpsUrls || []);
  if (https && location.protocol === 'http:') {
    const u = new URL(https);
    if (!isLocalHost(location.hostname) || isLocalHost(u.hostname)) u.hostname = location.hostname;
    /** @type {HTMLAnchorElement} */ ($('open-link')).href = u.toString();
  }
  const helper = pickUrl(info.trustUrls || []);
  if (helper) {
    /** @type {HTMLImageElement} */ ($('helper-qr')).src = `/qr.svg?text=${encodeURIComponent(helper)}`;
    $('helper-qr').dataset.text = helper;
    const a = /** @type {HTMLAnchorElement} */ ($('helper-link'));
    a.href = helper;
    a.textContent = helper;
    $('share').hidden = false;
  }
  document.body.dataset.ready = '1';
}

showPlatform();
load();
