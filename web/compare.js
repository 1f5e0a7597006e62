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
import { t, reasonText, applyTranslations } from './i18n.js';

/** The live columns show each path's last this many seconds (the panel's note, cmp.note in lang/, says so). */
const LIVE_SECONDS = 10;

/** Rows of the table: label (a message key), figure key, unit. */
const ROWS = [
  ['cmp.rtt', 'rttMs', 'ms'],
  ['cmp.audioJitter', 'audioJitterMs', 'ms'],
  ['cmp.videoJitter', 'jitterMs', 'ms'],
  ['cmp.lossIn', 'lossInPct', '%'],
  ['cmp.audioLoss', 'audioLossPct', '%'],
  ['cmp.lossOut', 'remoteLossPct', '%'],
  ['cmp.bitrateIn', 'inKbps', 'kbit/s'],
  ['cmp.bitrateOut', 'outKbps', 'kbit/s'],
  ['cmp.receivedVideo', 'res', ''],
  ['cmp.fpsIn', 'fps', 'fps'],
  ['cmp.framesDropped', 'framesDropped', ''],
  ['cmp.freezes', 'freeze', ''],
  ['cmp.firstFrame', 'firstFrameMs', 'ms'],
  ['cmp.pair', 'pair', ''],
];

/** Charts: sample key, label (a message key). */
const CHARTS = [
  ['inKbps', 'cmp.chartBitrate'],
  ['rttMs', 'cmp.chartRtt'],
  ['lossPct', 'cmp.chartLoss'],
  ['fps', 'cmp.chartFps'],
];

/**
 * @param {HTMLElement} root the panel element
 * @param {any} session a CallSession
 */
export function mountComparePanel(root, session) {
  root.innerHTML = `
    <div class="panel-head">
      <h2 data-i18n="call.compare"></h2>
      <button class="close" data-i18n-attr="aria-label:cmp.close">✕</button>
    </div>
    <p class="panel-note" data-i18n-html="cmp.note"></p>
    <div class="table-wrap"><table class="stats live">
      <thead><tr><th></th><th data-col="relay" data-i18n="cmp.relayed"></th><th data-col="direct" data-i18n="cmp.direct"></th><th data-i18n="cmp.server"></th></tr></thead>
      <tbody></tbody>
    </table></div>
    <div class="charts"></div>
    <div class="run">
      <label><span data-i18n="cmp.seconds"></span> <input type="number" class="secs" min="3" max="120" value="10"></label>
      <label><span data-i18n="cmp.order"></span> <select class="order"><option value="relay,direct" data-i18n="cmp.relayFirst"></option><option value="direct,relay" data-i18n="cmp.directFirst"></option></select></label>
      <button class="primary start-run" data-i18n="cmp.run"></button>
      <span class="run-status" role="status" aria-live="polite"></span>
    </div>
    <div class="report" hidden>
      <h3 data-i18n="cmp.report"></h3>
      <p class="verdict" role="status"></p>
      <div class="table-wrap"><table class="stats report-table"></table></div>
      <div class="downloads">
        <a class="button dl-json" download="lanrelay-comparison.json" data-i18n="cmp.downloadJson"></a>
        <a class="button dl-csv" download="lanrelay-comparison.csv" data-i18n="cmp.downloadCsv"></a>
      </div>
    </div>`;
  const tbody = /** @type {HTMLElement} */ (root.querySelector('table.live tbody'));
  for (const [label, key] of ROWS) {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    tr.innerHTML = `<th scope="row" data-i18n="${label}"></th><td data-col="relay">–</td><td data-col="direct">–</td><td data-col="server">–</td>`;
    tbody.append(tr);
  }
  const charts = /** @type {HTMLElement} */ (root.querySelector('.charts'));
  for (const [key, label] of CHARTS) {
    const fig = document.createElement('figure');
    fig.innerHTML = `<figcaption data-i18n="${label}"></figcaption><canvas width="240" height="60" data-key="${key}"></canvas>`;
    charts.append(fig);
  }
  applyTranslations(root);
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
      const report = await runComparison(session, secs, order, (/** @type {string} */ m) => (status.textContent = progressText(m)));
      showReport(root, report);
      status.textContent = t('cmp.done');
    } catch (e) {
      status.textContent = t('cmp.cannotRun', { error: reasonText(/** @type {Error} */ (e).message) });
    } finally {
      runButton.disabled = false;
    }
  });
}

/**
 * comparison.js's progress lines ("switching to relay", "measuring direct: 7 s left")
 * in the page's language.
 * @param {string} m
 */
function progressText(m) {
  const measuring = /^measuring (\w+): (\d+) s left$/.exec(m);
  if (measuring) return t('cmp.measuring', { path: pathName(measuring[1]), s: measuring[2] });
  const switching = /^switching to (\w+)$/.exec(m);
  if (switching) return t('cmp.switching', { path: pathName(switching[1]) });
  return m;
}

/** @param {string} path 'relay' or 'direct' */
function pathName(path) {
  return t(path === 'direct' ? 'cmp.directPath' : 'cmp.relayPath');
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
      return t('cmp.upDown', { up: ms(st.upJitterMs), down: ms(st.downJitterMs) });
    case 'audioJitterMs':
      return t('cmp.upDown', { up: ms(st.upAudioJitterMs), down: ms(st.downAudioJitterMs) });
    case 'lossInPct':
      return t('cmp.down', { v: pct(st.downLoss) });
    case 'remoteLossPct':
      return t('cmp.up', { v: pct(st.upLoss) });
    case 'inKbps':
      return t('cmp.down', { v: `${Math.round(st.downBps / 1000)} kbit/s` });
    case 'outKbps':
      return t('cmp.up', { v: `${Math.round(st.upBps / 1000)} kbit/s` });
    case 'pair':
      return st.remote ? `${st.local} ← ${st.remote} ${st.protocol}` : '–';
    case 'framesDropped':
      return t('cmp.nacks', { up: st.upNacks, down: st.downNacks });
    case 'freeze':
      return t('cmp.plis', { n: st.downPlis });
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
  ctx.fillText(t('cmp.max', { v: Math.round(max * 10) / 10 }), 4, 11);
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
    ['cmp.rSeconds', 'seconds'], ['cmp.rRtt', 'rttMs'], ['cmp.rAudioJitter', 'audioJitterMs'],
    ['cmp.rVideoJitter', 'jitterMs'], ['cmp.rLossIn', 'lossInPct'], ['cmp.rAudioLoss', 'audioLossPct'],
    ['cmp.rLossOut', 'remoteLossPct'], ['cmp.rBitrateIn', 'inKbps'], ['cmp.rBitrateOut', 'outKbps'],
    ['cmp.rResolution', 'res'], ['cmp.chartFps', 'fps'], ['cmp.framesDropped', 'framesDropped'], ['cmp.rFreezes', 'freezes'],
    ['cmp.rFrozen', 'frozenMs'], ['cmp.rFirstFrame', 'firstFrameMs'], ['cmp.pair', 'pair'],
  ];
  /** @type {HTMLElement} */ (root.querySelector('.verdict')).textContent = report.verdict?.text || '';
  let html = `<thead><tr><th></th>${paths.map((p) => `<th data-i18n="${p === 'direct' ? 'cmp.directPath' : 'cmp.relayPath'}"></th>`).join('')}</tr></thead><tbody>`;
  for (const [label, key] of keys) {
    html += `<tr><th scope="row" data-i18n="${label}"></th>`;
    for (const p of paths) {
      const e = report.paths[p];
      if (e.error) {
        html += key === 'seconds' ? `<td class="err">${escapeHtml(reasonText(e.error))}</td>` : '<td>–</td>';
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
    const v = (/** @type {any} */ x) => escapeHtml(String(x ?? '–'));
    const summary = t('cmp.serverSummary', {
      rtt: v(server.rttMs), up: v(server.upKbps), down: v(server.downKbps), lossUp: v(server.upLossPct),
      lossDown: v(server.downLossPct), audio: v(server.upAudioJitterMs), video: v(server.upJitterMs),
    });
    html += `<tr><th scope="row" data-i18n="cmp.rServer"></th><td colspan="${paths.length}">${summary}</td></tr>`;
  }
  table.innerHTML = html + '</tbody>';
  applyTranslations(table);
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
