// @ts-check
/**
 * The comparison panel of the call page: live numbers for the relayed and the direct
 * path side by side (as this browser measures them) and the server's numbers for the
 * relayed legs, small charts of the last minute, and the comparison run with its
 * downloadable report. DOM only: the numbers come from the session's `stats` events,
 * the run itself is comparison.js.
 */
import { reportToCsv } from './stats.js';
import { runComparison } from './comparison.js';

/** The live columns show each path's last this many seconds. */
const LIVE_SECONDS = 10;

/** Rows of the table: label, figure key, unit. */
const ROWS = [
  ['Round-trip time', 'rttMs', 'ms'],
  ['Jitter, audio in', 'audioJitterMs', 'ms'],
  ['Jitter, video in', 'jitterMs', 'ms'],
  ['Packet loss in', 'lossInPct', '%'],
  ['Audio loss, both ways', 'audioLossPct', '%'],
  ['Packet loss out (reported)', 'remoteLossPct', '%'],
  ['Bitrate in', 'inKbps', 'kbit/s'],
  ['Bitrate out', 'outKbps', 'kbit/s'],
  ['Received video', 'res', ''],
  ['Frame rate in', 'fps', 'fps'],
  ['Frames dropped', 'framesDropped', ''],
  ['Freezes (total time)', 'freeze', ''],
  ['Time to first frame', 'firstFrameMs', 'ms'],
  ['Candidate pair', 'pair', ''],
];

/** Charts: sample key, label. */
const CHARTS = [
  ['inKbps', 'Bitrate in (kbit/s)'],
  ['rttMs', 'RTT (ms)'],
  ['lossPct', 'Loss in (%)'],
  ['fps', 'Frame rate'],
];

/**
 * @param {HTMLElement} root the panel element
 * @param {any} session a CallSession
 */
export function mountComparePanel(root, session) {
  root.innerHTML = `
    <div class="panel-head">
      <h2>Path comparison</h2>
      <button class="close" aria-label="Close the comparison panel">✕</button>
    </div>
    <p class="panel-note">Columns <b>Relayed</b> and <b>Direct</b> are measured by this browser on each path over the
      last ${LIVE_SECONDS} s it carried the call (the current one is highlighted; the other keeps the figures of its
      last turn). <b>Server</b> is measured by the lanrelay
      server on your relayed legs: up = you → server, down = server → you.</p>
    <div class="table-wrap"><table class="stats live">
      <thead><tr><th></th><th data-col="relay">Relayed</th><th data-col="direct">Direct</th><th>Server (relay legs)</th></tr></thead>
      <tbody></tbody>
    </table></div>
    <div class="charts"></div>
    <div class="run">
      <label>Seconds per path <input type="number" class="secs" min="3" max="120" value="10"></label>
      <label>Order <select class="order"><option value="relay,direct">relay, then direct</option><option value="direct,relay">direct, then relay</option></select></label>
      <button class="primary start-run">Run comparison</button>
      <span class="run-status" role="status" aria-live="polite"></span>
    </div>
    <div class="report" hidden>
      <h3>Comparison report</h3>
      <p class="verdict" role="status"></p>
      <div class="table-wrap"><table class="stats report-table"></table></div>
      <div class="downloads">
        <a class="button dl-json" download="lanrelay-comparison.json">Download JSON</a>
        <a class="button dl-csv" download="lanrelay-comparison.csv">Download CSV</a>
      </div>
    </div>`;
  const tbody = /** @type {HTMLElement} */ (root.querySelector('table.live tbody'));
  for (const [label, key] of ROWS) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    tr.innerHTML = `<th scope="row">${label}</th><td data-col="relay">–</td><td data-col="direct">–</td><td data-col="server">–</td>`;
    tbody.append(tr);
  }
  const charts = /** @type {HTMLElement} */ (root.querySelector('.charts'));
  for (const [key, label] of CHARTS) {
    const fig = document.createElement('figure');
    fig.innerHTML = `<figcaption>${label}</figcaption><canvas width="240" height="60" data-key="${key}"></canvas>`;
    charts.append(fig);
  }
  root.querySelector('.close')?.addEventListener('click', () => {
    root.hidden = true;
  });

  session.addEventListener('stats', (/** @type {any} */ ev) => {
    if (root.hidden) return;
    render(root, session, ev.detail);
  });

  const runButton = /** @type {HTMLButtonElement} */ (root.querySelector('.start-run'));
  const status = /** @type {HTMLElement} */ (root.querySelector('.run-status'));
  runButton.addEventListener('click', async () => {
    const secs = Math.max(3, Math.min(120, Number(/** @type {HTMLInputElement} */ (root.querySelector('.secs')).value) || 10));
    const order = /** @type {HTMLSelectElement} */ (root.querySelector('.order')).value.split(',');
    runButton.disabled = true;
    try {
      const report = await runComparison(session, secs, order, (/** @type {string} */ m) => (status.textContent = m));
      showReport(root, report);
      status.textContent = 'done';
    } catch (e) {
      status.textContent = `cannot run: ${/** @type {Error} */ (e).message}`;
    } finally {
      runButton.disabled = false;
    }
  });
}

/**
 * @param {HTMLElement} root
 * @param {any} session
 * @param {{relay?: any, direct?: any, server?: any}} now
 */
function render(root, session, _now) {
  const hist = session.collector.history;
  /** @type {Record<string, any>} */
  const latest = {
    relay: session.collector.recent('relay', LIVE_SECONDS),
    direct: session.collector.recent('direct', LIVE_SECONDS),
  };
  for (const col of ['relay', 'direct']) {
    root.querySelectorAll(`[data-col="${col}"]`).forEach((el) => el.classList.toggle('current', session.path === col));
  }
  for (const tr of root.querySelectorAll('table.live tbody tr')) {
    const key = /** @type {HTMLElement} */ (tr).dataset.key || '';
    const unit = ROWS.find((r) => r[1] === key)?.[2] || '';
    for (const col of ['relay', 'direct']) {
      const cell = /** @type {HTMLElement} */ (tr.querySelector(`[data-col="${col}"]`));
      cell.textContent = formatCell(latest[col], key, unit);
    }
    const server = /** @type {HTMLElement} */ (tr.querySelector('[data-col="server"]'));
    server.textContent = formatServer(session.serverStats, key);
  }
  const active = hist[session.path || 'relay'] || [];
  const recent = active.slice(-60);
  root.querySelectorAll('canvas').forEach((c) => drawSparkline(/** @type {HTMLCanvasElement} */ (c), recent.map((/** @type {any} */ s) => s[c.dataset.key || ''])));
}

/**
 * @param {any} s a sample
 * @param {string} key
 * @param {string} unit
 */
function formatCell(s, key, unit) {
  if (!s) return '–';
  switch (key) {
    case 'res':
      return s.width ? `${s.width}×${s.height}` : '–';
    case 'freeze':
      return `${s.freezes} (${s.frozenMs} ms)`;
    case 'pair':
      return s.remote ? `${s.local} → ${s.remote} ${s.protocol}` : '–';
    default: {
      const v = s[key];
      return v === null || v === undefined ? '–' : `${v}${unit ? ` ${unit}` : ''}`;
    }
  }
}

/**
 * @param {any} st the server's LegStats
 * @param {string} key
 */
function formatServer(st, key) {
  if (!st) return '–';
  const pct = (/** @type {number | null} */ v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)} %`);
  const ms = (/** @type {number | null} */ v) => (v === null || v === undefined ? '–' : `${v.toFixed(1)} ms`);
  switch (key) {
    case 'rttMs':
      return st.rttMs === null || st.rttMs === undefined ? '–' : `${st.rttMs.toFixed(1)} ms`;
    case 'jitterMs':
      return `up ${ms(st.upJitterMs)} / down ${ms(st.downJitterMs)}`;
    case 'audioJitterMs':
      return `up ${ms(st.upAudioJitterMs)} / down ${ms(st.downAudioJitterMs)}`;
    case 'lossInPct':
      return `down ${pct(st.downLoss)}`;
    case 'remoteLossPct':
      return `up ${pct(st.upLoss)}`;
    case 'inKbps':
      return `down ${Math.round(st.downBps / 1000)} kbit/s`;
    case 'outKbps':
      return `up ${Math.round(st.upBps / 1000)} kbit/s`;
    case 'pair':
      return st.remote ? `${st.local} ← ${st.remote} ${st.protocol}` : '–';
    case 'framesDropped':
      return `NACKs up ${st.upNacks} / down ${st.downNacks}`;
    case 'freeze':
      return `keyframe requests ${st.downPlis}`;
    default:
      return '';
  }
}

/**
 * @param {HTMLCanvasElement} canvas
 * @param {(number | null)[]} values
 */
function drawSparkline(canvas, values) {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const nums = values.filter((v) => typeof v === 'number');
  if (nums.length < 2) return;
  const max = Math.max(...nums, 1e-9);
  ctx.strokeStyle = '#60a5fa';
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    if (typeof v !== 'number') return;
    const x = (i / Math.max(1, values.length - 1)) * (w - 4) + 2;
    const y = h - 4 - (v / max) * (h - 12);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = '#9aa6b8';
  ctx.font = '11px system-ui';
  ctx.fillText(`max ${Math.round(max * 10) / 10}`, 4, 11);
}

/**
 * @param {HTMLElement} root
 * @param {any} report
 */
function showReport(root, report) {
  const box = /** @type {HTMLElement} */ (root.querySelector('.report'));
  const table = /** @type {HTMLElement} */ (root.querySelector('.report-table'));
  const paths = Object.keys(report.paths);
  const keys = [
    ['Seconds measured', 'seconds'], ['Round-trip time (ms)', 'rttMs'], ['Jitter, audio in (ms)', 'audioJitterMs'],
    ['Jitter, video in (ms)', 'jitterMs'], ['Loss in (%)', 'lossInPct'], ['Audio loss, both ways (%)', 'audioLossPct'],
    ['Loss out, reported (%)', 'remoteLossPct'], ['Bitrate in (kbit/s)', 'inKbps'], ['Bitrate out (kbit/s)', 'outKbps'],
    ['Resolution', 'res'], ['Frame rate', 'fps'], ['Frames dropped', 'framesDropped'], ['Freezes', 'freezes'],
    ['Frozen (ms)', 'frozenMs'], ['Time to first frame (ms)', 'firstFrameMs'], ['Candidate pair', 'pair'],
  ];
  /** @type {HTMLElement} */ (root.querySelector('.verdict')).textContent = report.verdict?.text || '';
  let html = `<thead><tr><th></th>${paths.map((p) => `<th>${p}</th>`).join('')}</tr></thead><tbody>`;
  for (const [label, key] of keys) {
    html += `<tr><th scope="row">${label}</th>`;
    for (const p of paths) {
      const e = report.paths[p];
      if (e.error) {
        html += key === 'seconds' ? `<td class="err">${escapeHtml(e.error)}</td>` : '<td>–</td>';
        continue;
      }
      const s = e.summary;
      const v = key === 'res' ? `${s.width}×${s.height}` : key === 'pair' ? `${s.local} → ${s.remote} ${s.protocol}` : s[key];
      html += `<td>${v === null || v === undefined ? '–' : escapeHtml(String(v))}</td>`;
    }
    html += '</tr>';
  }
  const server = report.paths.relay?.server?.summary;
  if (server) {
    html += `<tr><th scope="row">Server: relay legs</th><td colspan="${paths.length}">RTT ${server.rttMs ?? '–'} ms, up ${server.upKbps ?? '–'} kbit/s, down ${server.downKbps ?? '–'} kbit/s, loss up ${server.upLossPct ?? '–'} % / down ${server.downLossPct ?? '–'} %, jitter up ${server.upAudioJitterMs ?? '–'} ms audio, ${server.upJitterMs ?? '–'} ms video</td></tr>`;
  }
  table.innerHTML = html + '</tbody>';
  const json = /** @type {HTMLAnchorElement} */ (root.querySelector('.dl-json'));
  const csv = /** @type {HTMLAnchorElement} */ (root.querySelector('.dl-csv'));
  json.href = URL.createObjectURL(new Blob([JSON.stringify(report, null, 2)], { type: 'application/json' }));
  csv.href = URL.createObjectURL(new Blob([reportToCsv(report)], { type: 'text/csv' }));
  box.hidden = false;
  /** @type {any} */ (window).lanrelay.report = report;
}

/** @param {string} s */
function escapeHtml(s) {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] || c);
}
