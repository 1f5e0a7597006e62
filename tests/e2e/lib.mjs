// Shared helpers of the browser tests: start the real server binary on loopback with
// ephemeral ports, launch headless Chromium with a fake camera and microphone, and
// read WebRTC stats from a page.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');

/** The server binary: LANRELAY_BIN, else the release build, else the debug build. */
function serverBinary() {
  return process.env.LANRELAY_BIN || join(repoRoot, 'target', 'release', 'lanrelay');
}

/**
 * Starts lanrelay on 127.0.0.1 with ephemeral ports and a fresh certificate directory.
 * Resolves with {url, port, stop(), logs()} once it printed its URL.
 * @param {string[]} [extraArgs]
 */
export async function startServer(extraArgs = []) {
  const certs = mkdtempSync(join(tmpdir(), 'lanrelay-certs-'));
  const args = ['--listen', '127.0.0.1:0', '--certs', certs, ...extraArgs];
  const proc = spawn(serverBinary(), args, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'lanrelay=debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20000);
    const check = () => {
      const m = out.match(/https:\/\/127\.0\.0\.1:(\d+)\//);
      // The "media on UDP" line is printed last: wait for it whole.
      if (m && /media on UDP [^\n]*\n/.test(out)) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    };
    proc.stdout.on('data', check);
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  const media = out.match(/media on UDP (127\.0\.0\.1:\d+)/);
  const helper = out.match(/HTTP helper on TCP (127\.0\.0\.1:\d+)/);
  return {
    url,
    port: Number(new URL(url).port),
    /** The plain-HTTP helper, `http://127.0.0.1:PORT` (null when it is off). */
    httpUrl: helper ? `http://${helper[1]}` : null,
    /** The certificate directory (lanrelay's CA is `ca.crt` in it). */
    certsDir: certs,
    /** The server's media address, as a browser's selected candidate pair shows it. */
    mediaAddr: media ? media[1] : null,
    logs: () => out,
    async stop() {
      proc.kill('SIGINT');
      await new Promise((r) => {
        if (proc.exitCode !== null) return r(undefined);
        proc.on('exit', r);
        setTimeout(() => { proc.kill('SIGKILL'); r(undefined); }, 3000);
      });
      rmSync(certs, { recursive: true, force: true });
    },
  };
}

export const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-dev-shm-usage',
  '--use-fake-device-for-media-stream=fps=30',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
];

/** Launches headless Chromium (Debian's) that accepts the server's self-signed cert. */
export async function launchBrowser(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [...chromiumArgs, '--ignore-certificate-errors', ...extra],
  });
}

/**
 * Opens a page in its own context and collects its console for failure reports.
 * @param {import('playwright-core').Browser} browser
 * @param {{width: number, height: number}} [viewport]
 */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport });
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[pageerror] ${e.message}`));
  page.logs = logs;
  return page;
}

/**
 * Summary of what the page receives, from its RTCPeerConnection stats: per remote
 * participant the decoded video frames and bytes, audio packets, and the selected
 * candidate pair's remote address.
 * @param {import('playwright-core').Page} page
 */
export async function mediaStats(page) {
  return page.evaluate(async () => {
    const s = /** @type {any} */ (window).lanrelay?.session;
    const pc = s?.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((r) => byId.set(r.id, r));
    let video = { framesDecoded: 0, bytesReceived: 0, frameWidth: 0, streams: 0, codecs: [] };
    let audio = { packetsReceived: 0, bytesReceived: 0, streams: 0 };
    let remoteAddress = null;
    let pairState = null;
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        video.framesDecoded += r.framesDecoded || 0;
        video.bytesReceived += r.bytesReceived || 0;
        video.frameWidth = Math.max(video.frameWidth, r.frameWidth || 0);
        video.streams += 1;
        const codec = r.codecId && byId.get(r.codecId);
        if (codec) video.codecs.push(codec.mimeType);
      }
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        audio.packetsReceived += r.packetsReceived || 0;
        audio.bytesReceived += r.bytesReceived || 0;
        audio.streams += 1;
      }
      if (r.type === 'transport' && r.selectedCandidatePairId) {
        const pair = byId.get(r.selectedCandidatePairId);
        const remote = pair && byId.get(pair.remoteCandidateId);
        if (remote) remoteAddress = `${remote.address}:${remote.port}`;
        pairState = pair?.state ?? null;
      }
    });
    const videos = [...document.querySelectorAll('video.remote')].map((v) => ({
      peer: v.closest('[data-peer]')?.getAttribute('data-peer'),
      width: /** @type {HTMLVideoElement} */ (v).videoWidth,
      height: /** @type {HTMLVideoElement} */ (v).videoHeight,
    }));
    return { video, audio, remoteAddress, pairState, videos, state: s.state, connectMs: s.connectMs };
  });
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
}
