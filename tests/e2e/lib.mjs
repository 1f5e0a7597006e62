// Shared helpers of the browser tests: start the real server binary on loopback with
// ephemeral ports, launch headless Chromium with a fake camera and microphone, and
// read WebRTC stats from a page.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
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
 * Starts lanrelay with ephemeral ports and a fresh certificate directory, on
 * 127.0.0.1 (or `opts.ip`), inside network namespace `opts.netns` when given.
 * A restart passes the first server's `reuse` (its ports and certificate directory),
 * so that the new process listens where the old one did.
 * Resolves with {url, port, mediaAddr, reuse, kill(), stop(), logs()} once it printed
 * its URL.
 * @param {string[]} [extraArgs]
 * @param {{netns?: string, ip?: string, reuse?: Reuse}} [opts]
 *
 * @typedef {{listen: string, mediaListen: string, httpListen: string, certsDir: string}} Reuse
 *   what a restart keeps: `--listen`, `--media-listen`, `--http-listen` (or `off`) and
 *   `--certs`.
 */
export async function startServer(extraArgs = [], opts = {}) {
  const certs = opts.reuse?.certsDir || mkdtempSync(join(tmpdir(), 'lanrelay-certs-'));
  const ip = opts.ip || '127.0.0.1';
  const ownHelper = extraArgs.some((a) => a === '--no-http' || a.startsWith('--http-listen'));
  const where = opts.reuse
    ? ['--listen', opts.reuse.listen, '--media-listen', opts.reuse.mediaListen,
      ...(ownHelper ? [] : ['--http-listen', opts.reuse.httpListen])]
    : ['--listen', `${ip}:0`];
  const args = [...where, '--certs', certs, ...extraArgs];
  const [cmd, argv] = opts.netns
    ? ['ip', ['netns', 'exec', opts.netns, serverBinary(), ...args]]
    : [serverBinary(), args];
  const proc = spawn(cmd, argv, {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'lanrelay=debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 20000);
    const urlRe = new RegExp(`https://${ip.replace(/\./g, '\\.')}:(\\d+)/`);
    // The last line of the start-up banner names the media port: wait for it.
    const check = () => {
      const m = out.match(urlRe);
      if (m && /media on UDP .*\n/.test(out)) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    };
    proc.stdout.on('data', check);
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)));
  });
  const media = out.match(new RegExp(`media on UDP (${ip.replace(/\./g, '\\.')}:\\d+)`));
  const helper = out.match(new RegExp(`HTTP helper on TCP (${ip.replace(/\./g, '\\.')}:\\d+)`));
  const port = Number(new URL(url).port);
  const exited = new Promise((r) => {
    if (proc.exitCode !== null || proc.signalCode !== null) r(undefined);
    else proc.on('exit', r);
  });
  return {
    url,
    port,
    /** The plain-HTTP helper, `http://127.0.0.1:PORT` (null when it is off). */
    httpUrl: helper ? `http://${helper[1]}` : null,
    /** The certificate directory (lanrelay's CA is `ca.crt` in it). */
    certsDir: certs,
    /** The server's media address, as a browser's selected candidate pair shows it. */
    mediaAddr: media ? media[1] : null,
    /** @type {Reuse} what `startServer(args, {reuse})` needs to start again in its place */
    reuse: {
      listen: `${ip}:${port}`,
      mediaListen: media ? media[1] : `${ip}:${port}`,
      httpListen: helper ? helper[1] : 'off',
      certsDir: certs,
    },
    /** The server's process id (inside the namespace too: `ip netns exec` execs it). */
    pid: proc.pid,
    logs: () => out,
    /** Kills the server with SIGKILL, as a crash would, and waits for it to be gone;
     * the certificate directory stays for a restart. */
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
    async stop() {
      proc.kill('SIGINT');
      let timer;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 3000)))]);
      clearTimeout(timer);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
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

/**
 * Launches headless Chromium (Debian's) that accepts the server's self-signed cert,
 * inside network namespace `netns` when given.
 * @param {string[]} [extra]
 * @param {{netns?: string}} [opts]
 */
export async function launchBrowser(extra = [], opts = {}) {
  let executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (opts.netns) {
    // Playwright talks to the browser over a pipe, so only the browser needs to run
    // inside the namespace.
    const wrapper = join(mkdtempSync(join(tmpdir(), 'lanrelay-ns-')), 'chromium');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${opts.netns} ${executablePath} "$@"\n`);
    chmodSync(wrapper, 0o755);
    executablePath = wrapper;
  }
  return chromium.launch({
    executablePath,
    args: [...chromiumArgs, '--ignore-certificate-errors', ...extra],
  });
}

/** Whether this process may create network namespaces (root with `ip`). */
export function canUseNetns() {
  try {
    return process.getuid?.() === 0 && !!execFileSync('ip', ['-V']).length;
  } catch {
    return false;
  }
}

/** @param {string[]} args */
function ip(args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A network namespace with only loopback up: tests inside it reach nothing but
 * themselves. Returns {name, remove()}.
 * @param {string} tag
 */
export function loopbackNamespace(tag) {
  const name = `lr-${tag}-${process.pid}`;
  try { ip(['netns', 'del', name]); } catch {}
  ip(['netns', 'add', name]);
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, remove: () => { try { ip(['netns', 'del', name]); } catch {} } };
}

/**
 * The phone scenario: a server namespace reachable from two client namespaces that
 * cannot reach each other (no forwarding on the server side). Addresses:
 * server 10.201.0.1, clients 10.201.1.2 and 10.201.2.2.
 * With `routed`, the server namespace forwards between the clients until
 * `setForwarding(false)` cuts them apart (a direct path that breaks mid-call).
 * With `link`, the clients also have a cable of their own (10.201.3.1, 10.201.3.2):
 * the direct path then runs there, the relayed legs through the server namespace.
 * Returns {srv, c1, c2, serverIp, setForwarding(on), limitC2(kbit), netem(which, spec), remove()}.
 * @param {{routed?: boolean, link?: boolean}} [opts]
 */
export function isolatedClients(opts = {}) {
  const p = process.pid;
  const srv = `lr-srv-${p}`;
  const c1 = `lr-c1-${p}`;
  const c2 = `lr-c2-${p}`;
  const remove = () => {
    for (const n of [srv, c1, c2]) {
      try { ip(['netns', 'del', n]); } catch {}
    }
  };
  remove();
  try {
    for (const n of [srv, c1, c2]) {
      ip(['netns', 'add', n]);
      ip(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    ip(['link', 'add', 'c1-eth', 'netns', c1, 'type', 'veth', 'peer', 'name', 'srv-c1', 'netns', srv]);
    ip(['link', 'add', 'c2-eth', 'netns', c2, 'type', 'veth', 'peer', 'name', 'srv-c2', 'netns', srv]);
    ip(['-n', c1, 'addr', 'add', '10.201.1.2/24', 'dev', 'c1-eth']);
    ip(['-n', srv, 'addr', 'add', '10.201.1.1/24', 'dev', 'srv-c1']);
    ip(['-n', c2, 'addr', 'add', '10.201.2.2/24', 'dev', 'c2-eth']);
    ip(['-n', srv, 'addr', 'add', '10.201.2.1/24', 'dev', 'srv-c2']);
    ip(['-n', srv, 'addr', 'add', '10.201.0.1/32', 'dev', 'lo']);
    for (const [n, dev] of [[c1, 'c1-eth'], [c2, 'c2-eth'], [srv, 'srv-c1'], [srv, 'srv-c2']]) {
      ip(['-n', n, 'link', 'set', dev, 'up']);
    }
    ip(['-n', c1, 'route', 'add', '10.201.0.1/32', 'via', '10.201.1.1']);
    ip(['-n', c2, 'route', 'add', '10.201.0.1/32', 'via', '10.201.2.1']);
    if (opts.routed) {
      ip(['-n', c1, 'route', 'add', '10.201.2.0/24', 'via', '10.201.1.1']);
      ip(['-n', c2, 'route', 'add', '10.201.1.0/24', 'via', '10.201.2.1']);
    }
    if (opts.link) {
      // A cable of their own between the clients: the direct path, apart from the
      // relayed legs, so that each can be given its own conditions.
      ip(['link', 'add', 'c1-p2p', 'netns', c1, 'type', 'veth', 'peer', 'name', 'c2-p2p', 'netns', c2]);
      ip(['-n', c1, 'addr', 'add', '10.201.3.1/24', 'dev', 'c1-p2p']);
      ip(['-n', c2, 'addr', 'add', '10.201.3.2/24', 'dev', 'c2-p2p']);
      ip(['-n', c1, 'link', 'set', 'c1-p2p', 'up']);
      ip(['-n', c2, 'link', 'set', 'c2-p2p', 'up']);
    }
  } catch (e) {
    remove();
    throw e;
  }
  // Without forwarding in the server namespace, c1 and c2 cannot reach each other.
  const setForwarding = (/** @type {boolean} */ on) =>
    execFileSync('ip', ['netns', 'exec', srv, 'sh', '-c', `echo ${on ? 1 : 0} > /proc/sys/net/ipv4/ip_forward`]);
  try {
    setForwarding(!!opts.routed);
  } catch (e) {
    remove();
    throw e;
  }
  /**
   * Limits what the server namespace sends towards client namespace 2 (its downlink),
   * with a token bucket; `null` removes the limit.
   * @param {number | null} kbit
   */
  const limitC2 = (kbit) => {
    if (kbit === null) {
      try { ip(['netns', 'exec', srv, 'tc', 'qdisc', 'del', 'dev', 'srv-c2', 'root']); } catch {}
      return;
    }
    ip(['netns', 'exec', srv, 'tc', 'qdisc', 'replace', 'dev', 'srv-c2', 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '16kbit', 'latency', '80ms']);
  };
  /**
   * Network conditions with `tc netem` on both ends of a link, the same each way:
   * `relay1` is client 1's relayed leg (c1-eth, srv-c1), `direct` the clients' own
   * cable (with `link`). `spec` is netem's arguments (`delay 20ms 5ms loss 3%`);
   * `null` removes them.
   * @param {'relay1' | 'direct'} which
   * @param {string | null} spec
   */
  const netem = (which, spec) => {
    const ends = which === 'relay1' ? [[c1, 'c1-eth'], [srv, 'srv-c1']] : [[c1, 'c1-p2p'], [c2, 'c2-p2p']];
    for (const [n, dev] of ends) {
      if (spec === null) {
        try { ip(['netns', 'exec', n, 'tc', 'qdisc', 'del', 'dev', dev, 'root']); } catch {}
      } else {
        ip(['netns', 'exec', n, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'netem', ...spec.split(/\s+/)]);
      }
    }
  };
  return { srv, c1, c2, serverIp: '10.201.0.1', setForwarding, limitC2, netem, remove };
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
export async function mediaStats(page, which = 'active') {
  return page.evaluate(async (which) => {
    const s = /** @type {any} */ (window).lanrelay?.session;
    const pc = which === 'active' ? s?.pc : s?.[which]?.pc;
    if (!pc) return null;
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((r) => byId.set(r.id, r));
    let video = { framesDecoded: 0, bytesReceived: 0, frameWidth: 0, streams: 0, codecs: [] };
    let audio = { packetsReceived: 0, bytesReceived: 0, streams: 0 };
    let remoteAddress = null;
    let localAddress = null;
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
        const local = pair && byId.get(pair.localCandidateId);
        if (remote) remoteAddress = `${remote.address}:${remote.port}`;
        if (local) localAddress = `${local.address}:${local.port}`;
        pairState = pair?.state ?? null;
      }
    });
    const videos = [...document.querySelectorAll('video.remote')].map((v) => ({
      peer: v.closest('[data-peer]')?.getAttribute('data-peer'),
      width: /** @type {HTMLVideoElement} */ (v).videoWidth,
      height: /** @type {HTMLVideoElement} */ (v).videoHeight,
    }));
    return {
      video, audio, remoteAddress, localAddress, pairState, videos, state: s.state, connectMs: s.connectMs,
      path: s.path, pathLog: s.pathLog, hasRelay: !!s.relay, hasDirect: !!s.direct,
    };
  }, which);
}

/**
 * Navigates, retrying when Chromium reports a network change (interfaces of a freshly
 * made namespace coming up while the browser starts).
 * @param {import('playwright-core').Page} page
 * @param {string} url
 */
export async function gotoRetry(page, url) {
  for (let i = 0; ; i++) {
    try {
      const res = await page.goto(url);
      // The app shows the start or the call view once its modules ran; a module lost
      // to a network change leaves both hidden: load the page again.
      const ready = await page
        .waitForFunction(() => !!document.querySelector('main:not([hidden])'), null, { timeout: 5000 })
        .then(() => true, () => false);
      if (ready || i >= 4) return res;
    } catch (e) {
      if (i >= 4 || !/ERR_NETWORK_CHANGED/.test(String(e))) throw e;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The call session's own view (for failure reports). */
export async function sessionState(page) {
  return page.evaluate(() => {
    const s = /** @type {any} */ (window).lanrelay?.session;
    if (!s) return null;
    const link = (l) => l && { state: l.state, pc: l.pc.connectionState, ice: l.pc.iceConnectionState, signaling: l.pc.signalingState };
    return { id: s.id, mode: s.mode, path: s.path, state: s.state, lastDirectFailure: s.lastDirectFailure,
      directFailures: s.directFailures, relay: link(s.relay), direct: link(s.direct), pathLog: s.pathLog, peers: [...s.peers.keys()] };
  }).catch((e) => String(e));
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
