// A browser that trusts lanrelay the way a person's does after following /trust: a
// fresh HOME whose NSS database (~/.pki/nssdb, which Chromium on Linux reads) holds
// only lanrelay's CA, added with certutil (Debian's libnss3-tools). The browser runs
// WITHOUT --ignore-certificate-errors and its contexts do not ignore HTTPS errors.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { chromiumArgs } from './lib.mjs';

/**
 * Makes a HOME with an NSS database; adds `caPath` (PEM) as a trusted CA when given.
 * @param {string | null} caPath
 * @returns {{home: string, listing: string, cleanup: () => void}}
 */
export function nssHome(caPath) {
  const home = mkdtempSync(join(tmpdir(), 'lanrelay-home-'));
  const db = join(home, '.pki', 'nssdb');
  mkdirSync(db, { recursive: true });
  execFileSync('certutil', ['-N', '--empty-password', '-d', `sql:${db}`]);
  if (caPath) execFileSync('certutil', ['-A', '-n', 'lanrelay', '-t', 'C,,', '-i', caPath, '-d', `sql:${db}`]);
  const listing = execFileSync('certutil', ['-L', '-d', `sql:${db}`], { encoding: 'utf8' });
  return { home, listing, cleanup: () => rmSync(home, { recursive: true, force: true }) };
}

/**
 * Launches headless Chromium with HOME set to `home`, strict about certificates.
 * @param {string} home
 */
export async function launchStrictBrowser(home) {
  const args = chromiumArgs.filter((a) => !a.startsWith('--ignore-certificate-errors'));
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args,
    env: { ...process.env, HOME: home },
  });
}

/**
 * A page in a fresh context that does NOT ignore HTTPS errors.
 * @param {import('playwright-core').Browser} browser
 * @param {object} [options] Playwright context options (viewport, userAgent, …)
 */
export async function strictPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', ...options, ignoreHTTPSErrors: false });
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  /** @type {any} */ (page).logs = logs;
  return page;
}
