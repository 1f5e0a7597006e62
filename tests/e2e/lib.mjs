// Shared helpers of the browser tests: start the real server binary on loopback with
// ephemeral ports, launch headless Chromium with a fake camera and microphone, and
// read WebRTC stats from a page.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';

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
 * `opts.nice` runs it at that niceness (a test that measures timing keeps it ahead of
 * the browsers for the CPU).
 * @param {{netns?: string, ip?: string, reuse?: Reuse, nice?: number}} [opts]
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
  const bin = opts.nice ? ['nice', '-n', String(opts.nice), serverBinary()] : [serverBinary()];
  const [cmd, argv] = opts.netns
    ? ['ip', ['netns', 'exec', opts.netns, ...bin, ...args]]
    : [bin[0], [...bin.slice(1), ...args]];
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
  // The pages follow the browser's language (web/i18n.js) and the tests read their
  // English: Chromium would otherwise take the machine's LANG. A test of another
  // language asks for it with the context's `locale`.
  '--lang=en-US',
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

/**
 * Launches headless Firefox ESR (Debian's `firefox-esr`) with a fake camera and
 * microphone, driven over WebDriver BiDi by puppeteer-core, inside network namespace
 * `netns` (Firefox gathers no loopback candidates, so it needs a namespace with a
 * veth address to call at all on one machine).
 *
 * Firefox has no pipe transport: puppeteer reads the BiDi WebSocket address Firefox
 * prints and connects to it on 127.0.0.1, which inside the namespace is not this
 * process's 127.0.0.1. So Firefox listens on a port that is free out here too, and
 * a bridge listening on that port out here carries each connection into the namespace
 * (`ip netns exec` running a few lines of Node that join stdin and stdout to the port).
 * Resolves with puppeteer's Browser; its `close()` also stops the bridge.
 * @param {{netns: string}} opts
 */
export async function launchFirefox(opts) {
  const firefox = process.env.FIREFOX || '/usr/bin/firefox-esr';
  const dir = mkdtempSync(join(tmpdir(), 'lanrelay-ff-'));
  const wrapper = join(dir, 'firefox');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${opts.netns} ${firefox} "$@"\n`);
  chmodSync(wrapper, 0o755);
  /** @type {Set<import('node:child_process').ChildProcess>} */
  const pipes = new Set();
  const join1 = `const s=require('net').connect(+process.argv[1],'127.0.0.1');process.stdin.pipe(s).on('error',()=>{});s.pipe(process.stdout);s.on('error',()=>process.exit(1));s.on('close',()=>process.exit(0))`;
  const bridge = createServer((sock) => {
    const p = spawn('ip', ['netns', 'exec', opts.netns, process.execPath, '-e', join1, String(port)], { stdio: ['pipe', 'pipe', 'ignore'] });
    pipes.add(p);
    sock.pipe(p.stdin).on('error', () => {});
    p.stdout.pipe(sock);
    sock.on('error', () => p.kill());
    sock.on('close', () => p.kill());
    p.on('exit', () => { pipes.delete(p); sock.destroy(); });
  });
  await new Promise((r) => bridge.listen(0, '127.0.0.1', () => r(undefined)));
  const port = /** @type {import('node:net').AddressInfo} */ (bridge.address()).port;
  const stop = () => {
    bridge.close();
    for (const p of pipes) p.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: wrapper,
      headless: true,
      debuggingPort: port,
      acceptInsecureCerts: true,
      extraPrefsFirefox: {
        'media.navigator.streams.fake': true,
        'media.navigator.permission.disabled': true,
        'media.peerconnection.ice.obfuscate_host_addresses': false,
        'media.autoplay.default': 0,
        'media.autoplay.blocking_policy': 0,
        // English pages (web/i18n.js follows the browser's languages).
        'intl.accept_languages': 'en-US, en',
      },
    });
  } catch (e) {
    stop();
    throw e;
  }
  const close = browser.close.bind(browser);
  browser.close = async () => {
    try { await close(); } finally { stop(); }
  };
  return browser;
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
 * Returns {srv, c1, c2, serverIp, setForwarding(on), remove()}.
 * @param {{routed?: boolean}} [opts]
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
   * Drops every UDP datagram the client namespaces send (nftables), as a network
   * that passes HTTPS but not UDP does.
   */
  const blockUdp = () => {
    for (const n of [c1, c2]) {
      execFileSync('ip', ['netns', 'exec', n, 'nft',
        'add table inet lr; add chain inet lr out { type filter hook output priority 0 ; }; add rule inet lr out meta l4proto udp drop']);
    }
  };
  return { srv, c1, c2, serverIp: '10.201.0.1', setForwarding, limitC2, blockUdp, remove };
}

/**
 * The comparison's test bench: like `isolatedClients`, plus a cable of the clients'
 * own for the direct path (10.201.3.1 to 10.201.3.2), and a fourth namespace, the
 * wire, that client 1's relayed leg and the direct cable pass through, so each can be
 * given known conditions with `shape(which, spec)` (netem's arguments, the same both
 * ways: `delay 20ms 5ms loss 3%`). Client 2's leg is clean.
 *
 * The wire uses `tc qdisc ... netem` on a bridge where the kernel has netem; where it
 * does not (CONFIG_NET_SCH_NETEM unset, as on the kernel these tests were written on),
 * `wire.py` does the same in user space: netem's delay, uniform jitter and random loss
 * per frame. `engine` says which one is in use.
 * Returns {srv, c1, c2, serverIp, engine, shape(which, spec), remove()}.
 */
export async function emulatedClients() {
  const p = process.pid;
  const [srv, c1, c2, w] = ['srv', 'c1', 'c2', 'w'].map((n) => `lr-cal${n}-${p}`);
  /** @type {import('node:child_process').ChildProcess[]} */
  const procs = [];
  const remove = () => {
    for (const pr of procs) pr.kill('SIGKILL');
    for (const n of [srv, c1, c2, w]) {
      try { ip(['netns', 'del', n]); } catch {}
    }
  };
  remove();
  const links = { relay1: ['w-r1a', 'w-r1b'], direct: ['w-d1', 'w-d2'] };
  /** @type {Record<string, (line: string) => Promise<void>>} */
  const feed = {};
  let engine = 'netem';
  try {
    for (const n of [srv, c1, c2, w]) {
      ip(['netns', 'add', n]);
      ip(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    const veth = (/** @type {string} */ a, /** @type {string} */ na, /** @type {string} */ b, /** @type {string} */ nb) => {
      ip(['link', 'add', a, 'netns', na, 'type', 'veth', 'peer', 'name', b, 'netns', nb]);
      // One segment per packet: a wire in user space forwards frames, not 64 KiB
      // TCP super-packets.
      for (const [dev, n] of [[a, na], [b, nb]]) ip(['-n', n, 'link', 'set', dev, 'gso_max_segs', '1', 'up']);
    };
    veth('c1-eth', c1, 'w-r1a', w);
    veth('w-r1b', w, 'srv-c1', srv);
    veth('c2-eth', c2, 'srv-c2', srv);
    veth('c1-p2p', c1, 'w-d1', w);
    veth('w-d2', w, 'c2-p2p', c2);
    ip(['-n', c1, 'addr', 'add', '10.201.1.2/24', 'dev', 'c1-eth']);
    ip(['-n', srv, 'addr', 'add', '10.201.1.1/24', 'dev', 'srv-c1']);
    ip(['-n', c2, 'addr', 'add', '10.201.2.2/24', 'dev', 'c2-eth']);
    ip(['-n', srv, 'addr', 'add', '10.201.2.1/24', 'dev', 'srv-c2']);
    ip(['-n', srv, 'addr', 'add', '10.201.0.1/32', 'dev', 'lo']);
    ip(['-n', c1, 'addr', 'add', '10.201.3.1/24', 'dev', 'c1-p2p']);
    ip(['-n', c2, 'addr', 'add', '10.201.3.2/24', 'dev', 'c2-p2p']);
    ip(['-n', c1, 'route', 'add', '10.201.0.1/32', 'via', '10.201.1.1']);
    ip(['-n', c2, 'route', 'add', '10.201.0.1/32', 'via', '10.201.2.1']);
    execFileSync('ip', ['netns', 'exec', srv, 'sh', '-c', 'echo 0 > /proc/sys/net/ipv4/ip_forward']);
    try {
      execFileSync('ip', ['netns', 'exec', w, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '0ms'], { stdio: 'ignore' });
      execFileSync('ip', ['netns', 'exec', w, 'tc', 'qdisc', 'del', 'dev', 'lo', 'root'], { stdio: 'ignore' });
    } catch {
      engine = 'wire.py';
    }
    for (const [name, [a, b]] of Object.entries(links)) {
      if (engine === 'netem') {
        ip(['-n', w, 'link', 'add', `br-${name}`, 'type', 'bridge']);
        ip(['-n', w, 'link', 'set', a, 'master', `br-${name}`]);
        ip(['-n', w, 'link', 'set', b, 'master', `br-${name}`]);
        ip(['-n', w, 'link', 'set', `br-${name}`, 'up']);
        feed[name] = async (spec) => {
          for (const dev of [a, b]) {
            ip(['netns', 'exec', w, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'netem', ...spec.split(/\s+/)]);
          }
        };
        continue;
      }
      ip(['-n', w, 'link', 'set', a, 'promisc', 'on']);
      ip(['-n', w, 'link', 'set', b, 'promisc', 'on']);
      // Ahead of the browsers for the CPU: a wire that waits for a core would add
      // its wait to every delay.
      const pr = spawn('ip', ['netns', 'exec', w, 'nice', '-n', '-10', 'python3', join(here, 'wire.py'), a, b], { stdio: ['pipe', 'pipe', 'inherit'] });
      procs.push(pr);
      /** @type {((line: string) => void)[]} */
      const waiting = [];
      let buf = '';
      pr.stdout.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          waiting.shift()?.(line);
        }
      });
      const next = () => new Promise((r, j) => {
        const t = setTimeout(() => j(new Error(`wire.py on ${name} did not answer`)), 5000);
        waiting.push((line) => { clearTimeout(t); r(line); });
      });
      const ready = await next();
      if (ready !== 'ready') throw new Error(`wire.py on ${name}: ${ready}`);
      feed[name] = async (spec) => {
        const answer = next();
        pr.stdin.write(`${spec}\n`);
        const line = await answer;
        if (line !== 'ok') throw new Error(`wire.py on ${name}: ${line}`);
      };
    }
    for (const name of Object.keys(links)) await feed[name]('delay 0ms');
  } catch (e) {
    remove();
    throw e;
  }
  /**
   * Gives client 1's relayed leg (`relay1`) or the direct cable (`direct`) the
   * conditions `spec` (netem's arguments), both ways.
   * @param {'relay1' | 'direct'} which
   * @param {string} spec
   */
  const shape = (which, spec) => feed[which](spec);
  return { srv, c1, c2, serverIp: '10.201.0.1', engine, shape, remove };
}

/**
 * Opens a page in its own context and collects its console for failure reports. The
 * page's language is English unless `options.locale` says otherwise.
 * @param {import('playwright-core').Browser} browser
 * @param {{width: number, height: number}} [viewport]
 * @param {object} [options] more Playwright context options (locale, …)
 */
export async function newPage(browser, viewport = { width: 1280, height: 800 }, options = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, locale: 'en-US', ...options });
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
    let protocol = null;
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
        if (remote) protocol = remote.protocol;
        pairState = pair?.state ?? null;
      }
    });
    // Firefox has no transport stats: its candidate pair in use says `selected`.
    if (!remoteAddress) {
      report.forEach((pair) => {
        if (pair.type !== 'candidate-pair' || !pair.selected) return;
        const remote = byId.get(pair.remoteCandidateId);
        const local = byId.get(pair.localCandidateId);
        if (remote) remoteAddress = `${remote.address}:${remote.port}`;
        if (local) localAddress = `${local.address}:${local.port}`;
        if (remote) protocol = remote.protocol;
        pairState = pair.state ?? null;
      });
    }
    const videos = [...document.querySelectorAll('video.remote')].map((v) => ({
      peer: v.closest('[data-peer]')?.getAttribute('data-peer'),
      width: /** @type {HTMLVideoElement} */ (v).videoWidth,
      height: /** @type {HTMLVideoElement} */ (v).videoHeight,
    }));
    return {
      video, audio, remoteAddress, localAddress, protocol, pairState, videos, state: s.state, connectMs: s.connectMs,
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
  const said = typeof what === 'function' ? what() : what;
  throw new Error(`timed out after ${ms} ms waiting for ${said}; last: ${JSON.stringify(last)}`);
}

/**
 * A cluster on one bridge: namespaces for NATS (10.202.0.10), three nodes a, b, c
 * (10.202.0.1, .2, .3) and a client (10.202.0.100), each with a veth on a bridge in a
 * sixth namespace, all on 10.202.0.0/24. `dropUdp(from, toIp, percent)` drops that
 * share of the UDP datagrams namespace `from` sends to `toIp` (nftables' random
 * numbers: no netem needed), `dropped(from)` says how many it dropped.
 * Returns {ns: {nats, a, b, c, client}, ip: {...}, dropUdp, dropped, remove()}.
 */
export function clusterNetwork() {
  const p = process.pid;
  const names = ['nats', 'a', 'b', 'c', 'client'];
  const ns = Object.fromEntries(names.map((n) => [n, `lr-cl${n}-${p}`]));
  const ipOf = { nats: '10.202.0.10', a: '10.202.0.1', b: '10.202.0.2', c: '10.202.0.3', client: '10.202.0.100' };
  const bridge = `lr-clbr-${p}`;
  const remove = () => {
    for (const n of [...Object.values(ns), bridge]) {
      try { ip(['netns', 'del', n]); } catch {}
    }
  };
  remove();
  try {
    ip(['netns', 'add', bridge]);
    ip(['-n', bridge, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', bridge, 'link', 'set', 'br0', 'up']);
    for (const n of names) {
      ip(['netns', 'add', ns[n]]);
      ip(['-n', ns[n], 'link', 'set', 'lo', 'up']);
      ip(['link', 'add', 'eth0', 'netns', ns[n], 'type', 'veth', 'peer', 'name', `v-${n}`, 'netns', bridge]);
      ip(['-n', ns[n], 'addr', 'add', `${ipOf[n]}/24`, 'dev', 'eth0']);
      ip(['-n', ns[n], 'link', 'set', 'eth0', 'up']);
      ip(['-n', bridge, 'link', 'set', `v-${n}`, 'master', 'br0']);
      ip(['-n', bridge, 'link', 'set', `v-${n}`, 'up']);
    }
  } catch (e) {
    remove();
    throw e;
  }
  const dropUdp = (/** @type {string} */ from, /** @type {string} */ toIp, /** @type {number} */ percent) => {
    execFileSync('ip', ['netns', 'exec', ns[from], 'nft',
      `add table inet lrloss; add chain inet lrloss out { type filter hook output priority 0 ; }; add rule inet lrloss out ip daddr ${toIp} meta l4proto udp numgen random mod 100 < ${percent} counter drop`]);
  };
  const dropped = (/** @type {string} */ from) => {
    const out = execFileSync('ip', ['netns', 'exec', ns[from], 'nft', 'list', 'table', 'inet', 'lrloss']).toString();
    const m = out.match(/counter packets (\d+)/);
    return m ? Number(m[1]) : 0;
  };
  return { ns, ip: ipOf, dropUdp, dropped, remove };
}

/** The lanrelay binary the browser tests run (see startServer). */
export function lanrelayBinary() {
  return serverBinary();
}
