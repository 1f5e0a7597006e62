// @ts-check
/**
 * The recordings page (`/recordings`): each file the server lets this browser see,
 * newest first, with its duration and size, a player and a download link. The
 * server decides what that is: every file for the operator (`?token=` on this
 * page's address, passed on to its requests), the room's files for its host (the
 * key the call page keeps in a cookie). A file still being written has no duration
 * yet; the page asks again every few seconds while one is.
 */
import { t } from './i18n.js';

/** @typedef {{name: string, bytes: number, duration: number | null, modified: number, url: string}} Listed */

const token = new URLSearchParams(location.search).get('token');
/** The operator's token goes on with every request this page makes. */
const withToken = (/** @type {string} */ url) => (token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url);

const status = /** @type {HTMLElement} */ (document.getElementById('rec-status'));
const list = /** @type {HTMLElement} */ (document.getElementById('rec-list'));
/** @type {Listed[] | null} */
let shown = null;
/** @type {{state: string, rooms?: string[] | null}} */
let last = { state: 'loading' };

/** @param {number} bytes */
function size(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** @param {number} s seconds */
function duration(s) {
  const total = Math.round(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

async function load() {
  let res;
  try {
    res = await fetch(withToken('/recordings?format=json'), { headers: { accept: 'application/json' }, cache: 'no-store' });
  } catch {
    last = { state: 'unreachable' };
    render();
    return;
  }
  if (res.status === 401) {
    last = { state: 'denied' };
    shown = [];
    render();
    return;
  }
  const body = await res.json();
  shown = body.files;
  last = { state: 'ok', rooms: body.rooms };
  render();
  // Files still being written get their duration when they are finished.
  if (shown?.some((f) => f.duration === null)) setTimeout(load, 3000);
}

function render() {
  const files = shown || [];
  if (last.state === 'denied') status.textContent = t('rec.denied');
  else if (last.state === 'unreachable') status.textContent = t('rec.unreachable');
  else if (last.state === 'loading') status.textContent = t('rec.loading');
  else if (!files.length) status.textContent = t('rec.none');
  else if (last.rooms) status.textContent = t('rec.ofRooms', { rooms: last.rooms.join(', '), n: files.length });
  else status.textContent = t('rec.all', { n: files.length });
  const existing = new Map([...list.children].map((li) => [/** @type {HTMLElement} */ (li).dataset.name, li]));
  const items = files.map((f) => {
    // A player already on the page keeps playing across a refresh of the list.
    const li = /** @type {HTMLElement} */ (existing.get(f.name) || item(f));
    const facts = /** @type {HTMLElement} */ (li.querySelector('.rec-facts'));
    facts.textContent = [f.duration === null ? t('rec.writing') : duration(f.duration), size(f.bytes), new Date(f.modified * 1000).toLocaleString()].join(' · ');
    const dl = /** @type {HTMLAnchorElement} */ (li.querySelector('.rec-download'));
    dl.textContent = t('rec.download');
    return li;
  });
  list.replaceChildren(...items);
}

/** @param {Listed} f */
function item(f) {
  const li = document.createElement('li');
  li.className = 'rec-item';
  li.dataset.name = f.name;
  const name = document.createElement('div');
  name.className = 'rec-name';
  name.textContent = f.name;
  const facts = document.createElement('div');
  facts.className = 'rec-facts';
  const video = document.createElement('video');
  video.controls = true;
  video.preload = 'metadata';
  video.playsInline = true;
  video.src = withToken(f.url);
  const dl = document.createElement('a');
  dl.className = 'rec-download button';
  dl.href = withToken(f.url);
  dl.download = f.name;
  li.append(name, facts, video, dl);
  return li;
}

document.addEventListener('langchange', render);
render();
load();
