// Screen share settings compared (not a test: `node screen-bench.mjs`, as root; see
// docs/benchmarks.md). Ann shares a page of small text (a 1280x720 canvas of 12 px
// monospace lines, scrolling 30 px a second) through the server, Bob receives it in
// the large area; both cameras and microphones are off. For each setting (one layer
// with the content hint `detail`, the page's default; or three simulcast layers like
// the camera) and each link (loopback as it is; loopback shaped to LIMIT_KBPS with a
// token bucket, both legs), 8 s of warm-up then 12 s measured from Bob's inbound-rtp
// of the share and Ann's outbound-rtp: received size, frame rate, bitrate, average QP
// (lower: sharper), freezes, and what limited Ann's encoder.
import { execFileSync } from 'node:child_process';
import { startServer, launchBrowser, newPage, waitFor, gotoRetry, loopbackNamespace } from './lib.mjs';

const LIMIT_KBPS = Number(process.env.LIMIT_KBPS || 2000);
const WARM_MS = 8000;
const MEASURE_MS = 12000;

const ns = loopbackNamespace('screenbench');
const server = await startServer([], { netns: ns.name });
const browser = await launchBrowser([], { netns: ns.name });

/** Draws the scrolling text page and shares its canvas as Ann's screen. */
function shareTextPage() {
  const c = document.createElement('canvas');
  c.width = 1280;
  c.height = 720;
  const g = /** @type {CanvasRenderingContext2D} */ (c.getContext('2d'));
  const words = 'the relay forwards each packet to every receiver once keyframe layer bandwidth estimate simulcast screen share text detail resolution frame rate sharp pixels font'.split(' ');
  let seed = 1;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const lines = Array.from({ length: 200 }, (_, i) => `${String(i + 1).padStart(3)}  ${Array.from({ length: 14 + Math.floor(rnd() * 8) }, () => words[Math.floor(rnd() * words.length)]).join(' ')}`);
  const start = performance.now();
  const draw = () => {
    const y0 = 10 - ((performance.now() - start) / 1000) * 30;
    g.fillStyle = '#fff';
    g.fillRect(0, 0, c.width, c.height);
    g.fillStyle = '#000';
    g.font = '12px monospace';
    g.textBaseline = 'top';
    lines.forEach((l, i) => {
      const y = y0 + i * 15;
      if (y > -15 && y < c.height) g.fillText(l, 10, y);
    });
  };
  draw();
  setInterval(draw, 33);
  const track = c.captureStream(30).getVideoTracks()[0];
  const s = /** @type {any} */ (window).lanrelay.session;
  s.setCamera(false);
  s.setMic(false);
  s.shareTrack(track);
}

/** Inbound (Bob) or outbound (Ann) video RTP of the share, summed over layers. */
async function shareStats(page, dir) {
  return page.evaluate(async (dir) => {
    const s = /** @type {any} */ (window).lanrelay.session;
    const report = await s.relay.pc.getStats();
    const out = { bytes: 0, frames: 0, qp: 0, width: 0, height: 0, freezes: 0, freezeS: 0, limit: '', layers: 0 };
    if (dir === 'in') {
      const track = /** @type {HTMLVideoElement} */ (document.getElementById('stage-video')).srcObject?.getVideoTracks()[0];
      report.forEach((r) => {
        if (r.type !== 'inbound-rtp' || r.kind !== 'video' || r.trackIdentifier !== track?.id) return;
        Object.assign(out, { bytes: r.bytesReceived, frames: r.framesDecoded, qp: r.qpSum || 0, width: r.frameWidth, height: r.frameHeight, freezes: r.freezeCount || 0, freezeS: r.totalFreezesDuration || 0 });
      });
    } else {
      const mid = s.relay.screenTransceiver?.mid;
      report.forEach((r) => {
        if (r.type !== 'outbound-rtp' || r.kind !== 'video' || r.mid !== mid) return;
        out.bytes += r.bytesSent;
        out.layers += r.bytesSent > 0 ? 1 : 0;
        if ((r.frameWidth || 0) >= out.width) {
          Object.assign(out, { width: r.frameWidth || 0, height: r.frameHeight || 0, frames: r.framesEncoded, qp: r.qpSum || 0, limit: r.qualityLimitationReason });
        }
      });
    }
    return out;
  }, dir);
}

async function run(setting, limited) {
  const room = `bench-${setting}-${limited ? 'lim' : 'free'}`;
  const url = `${server.url}?room=${room}&autojoin=1&mode=relay${setting === 'simulcast' ? '&screenSimulcast=1' : ''}`;
  const ann = await newPage(browser);
  await gotoRetry(ann, `${url}&name=Ann`);
  const bob = await newPage(browser);
  await gotoRetry(bob, `${url}&name=Bob`);
  await waitFor(async () => bob.evaluate(() => !!(/** @type {any} */ (window)).lanrelay?.session?.relay), 15000, 'Bob connects');
  // Shaped once the pages are loaded (a page load through the bucket takes long).
  if (limited) tc('add', 'tbf', 'rate', `${LIMIT_KBPS}kbit`, 'burst', '64kbit', 'latency', '300ms');
  await ann.evaluate(shareTextPage);
  await waitFor(async () => bob.evaluate(() => !!(/** @type {HTMLVideoElement} */ (document.getElementById('stage-video'))).videoWidth), 20000, 'Bob gets the share');
  await bob.waitForTimeout(WARM_MS);
  const [b0, a0] = [await shareStats(bob, 'in'), await shareStats(ann, 'out')];
  await bob.waitForTimeout(MEASURE_MS);
  const [b1, a1] = [await shareStats(bob, 'in'), await shareStats(ann, 'out')];
  const s = MEASURE_MS / 1000;
  const frames = b1.frames - b0.frames;
  const row = {
    setting,
    link: limited ? `${LIMIT_KBPS} kbit/s` : 'loopback',
    received: `${b1.width}x${b1.height}`,
    fps: +(frames / s).toFixed(1),
    kbps: Math.round(((b1.bytes - b0.bytes) * 8) / s / 1000),
    qp: frames ? +((b1.qp - b0.qp) / frames).toFixed(1) : null,
    freezes: b1.freezes - b0.freezes,
    freezeMs: Math.round((b1.freezeS - b0.freezeS) * 1000),
    sentKbps: Math.round(((a1.bytes - a0.bytes) * 8) / s / 1000),
    sentLayers: a1.layers,
    sentTop: `${a1.width}x${a1.height}`,
    encoderLimit: a1.limit,
  };
  if (limited) tc('del');
  await ann.context().close();
  await bob.context().close();
  return row;
}

/** `tc qdisc ACTION dev lo root ...` in the namespace. */
function tc(action, ...rest) {
  execFileSync('ip', ['netns', 'exec', ns.name, 'tc', 'qdisc', action, 'dev', 'lo', 'root', ...rest]);
}

const rows = [];
try {
  for (const limited of [false, true]) {
    for (const setting of ['detail', 'simulcast']) {
      const row = await run(setting, limited);
      console.log(JSON.stringify(row));
      rows.push(row);
    }
  }
  console.table(rows);
} finally {
  await browser.close();
  await server.stop();
  ns.remove();
}
