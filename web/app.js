// @ts-check
/**
 * The page: start form, call view, tiles and controls. It drives a CallSession and
 * renders its events; it never speaks the signaling protocol itself.
 *
 * Deep links: /?room=R&name=N pre-fills the form; &autojoin=1 joins at once;
 * &vcodec=h264|vp8 makes this page send that video codec.
 */
import { CallSession } from './session.js';

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const params = new URLSearchParams(location.search);
const ADJ = ['amber', 'brisk', 'calm', 'daring', 'eager', 'fancy', 'gentle', 'happy', 'jolly', 'lucky', 'merry', 'nimble', 'quiet', 'sunny', 'witty'];
const NOUN = ['otter', 'falcon', 'maple', 'harbor', 'comet', 'panda', 'cedar', 'lagoon', 'meadow', 'pebble', 'robin', 'tulip', 'walrus', 'zephyr'];

function randomRoom() {
  const pick = (/** @type {string[]} */ a) => a[Math.floor(Math.random() * a.length)];
  return `${pick(ADJ)}-${pick(NOUN)}-${Math.floor(Math.random() * 90 + 10)}`;
}

/** @param {string} room */
function roomUrl(room) {
  const u = new URL('/', location.href);
  u.searchParams.set('room', room);
  return u.toString();
}

/** @type {CallSession | null} */
let session = null;
/** @type {Map<number, HTMLElement>} */
const tiles = new Map();

function showStart() {
  $('call').hidden = true;
  $('start').hidden = false;
  const room = /** @type {HTMLInputElement} */ ($('room'));
  const name = /** @type {HTMLInputElement} */ ($('name'));
  room.value = params.get('room') || randomRoom();
  name.value = params.get('name') || localStorage.getItem('lanrelay.name') || '';
  const updateLink = () => {
    const link = /** @type {HTMLAnchorElement} */ ($('room-link'));
    link.href = roomUrl(room.value.trim() || 'room');
    link.textContent = link.href;
  };
  room.addEventListener('input', updateLink);
  updateLink();
  $('insecure').hidden = window.isSecureContext;
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const r = room.value.trim();
    const n = name.value.trim();
    if (!r || !n) return;
    localStorage.setItem('lanrelay.name', n);
    const u = new URL(location.href);
    u.searchParams.set('room', r);
    u.searchParams.set('name', n);
    u.searchParams.delete('autojoin');
    history.replaceState(null, '', u);
    join(r, n);
  });
  (name.value ? $('join') : name).focus();
}

/**
 * @param {string} room
 * @param {string} name
 */
async function join(room, name) {
  $('start').hidden = true;
  $('call').hidden = false;
  $('failed').hidden = true;
  $('room-label').textContent = room;
  const share = /** @type {HTMLAnchorElement} */ ($('share-link'));
  share.href = roomUrl(room);
  share.textContent = share.href;
  document.title = `${room} · lanrelay`;

  const s = new CallSession({ room, name, videoCodec: params.get('vcodec') || '' });
  session = s;
  // For tests and debugging from the console.
  /** @type {any} */ (window).lanrelay = { session: s };
  s.addEventListener('state', (ev) => renderState(/** @type {CustomEvent} */ (ev).detail));
  s.addEventListener('peers', () => renderPeers(s));
  s.addEventListener('stream', (ev) => {
    const { peerId, stream } = /** @type {CustomEvent} */ (ev).detail;
    attachStream(peerId, stream);
  });
  try {
    await s.start();
  } catch (e) {
    renderState({ state: 'failed', reason: String(e) });
    return;
  }
  const self = /** @type {HTMLVideoElement} */ ($('self-video'));
  self.srcObject = s.localStream;
  const hasVideo = !!s.localStream?.getVideoTracks().length;
  $('self-tile').classList.toggle('no-video', !hasVideo);
  setPressed('mic', !!s.localStream?.getAudioTracks().length);
  setPressed('cam', hasVideo);
}

/** @param {{state: string, reason?: string, path?: string}} d */
function renderState(d) {
  const status = $('status');
  status.dataset.state = d.state;
  const text = {
    connecting: 'Connecting…',
    connected: d.path === 'relay' ? 'Connected · relayed via server' : 'Connected',
    reconnecting: `Reconnecting… ${d.reason ? `(${d.reason})` : ''}`,
    failed: `Failed: ${d.reason || 'unknown error'}`,
    ended: 'Call ended',
  }[d.state] || d.state;
  $('status-text').textContent = text;
  if (d.state === 'failed') {
    $('failed-reason').textContent = d.reason || '';
    $('failed').hidden = false;
  }
}

/** @param {CallSession} s */
function renderPeers(s) {
  for (const [id, tile] of tiles) {
    if (!s.peers.has(id)) {
      tile.remove();
      tiles.delete(id);
    }
  }
  for (const [id, info] of s.peers) {
    const tile = tileFor(id);
    /** @type {HTMLElement} */ (tile.querySelector('.who')).textContent = info.name;
    tile.classList.toggle('no-video', !info.video);
    tile.classList.toggle('muted', !info.audio);
    /** @type {HTMLElement} */ (tile.querySelector('.badges')).textContent = info.audio ? '' : 'muted';
    const stream = s.streams.get(id);
    if (stream) attachStream(id, stream);
  }
  const n = s.peers.size;
  $('count').textContent = n ? `· ${n + 1} in call` : '';
  $('alone').hidden = n > 0 || s.state === 'failed';
  $('tiles').dataset.count = String(Math.min(n + 1, 9));
}

/** @param {number} id */
function tileFor(id) {
  let tile = tiles.get(id);
  if (tile) return tile;
  tile = document.createElement('figure');
  tile.className = 'tile remote';
  tile.dataset.peer = String(id);
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.className = 'remote';
  const cap = document.createElement('figcaption');
  cap.innerHTML = '<span class="who"></span><span class="badges"></span>';
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  tile.append(video, avatar, cap);
  $('tiles').append(tile);
  tiles.set(id, tile);
  return tile;
}

/**
 * @param {number} peerId
 * @param {MediaStream} stream
 */
function attachStream(peerId, stream) {
  const tile = tileFor(peerId);
  const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
  if (video.srcObject !== stream) {
    video.srcObject = stream;
    video.play().catch(() => {
      // Autoplay with sound can be blocked until the user taps: show a hint.
      tile.classList.add('tap-to-play');
      tile.addEventListener('click', () => {
        video.play();
        tile.classList.remove('tap-to-play');
      }, { once: true });
    });
  }
  const name = session?.peers.get(peerId)?.name || '';
  /** @type {HTMLElement} */ (tile.querySelector('.avatar')).textContent = (name[0] || '?').toUpperCase();
}

/**
 * @param {string} id
 * @param {boolean} on
 */
function setPressed(id, on) {
  const b = $(id);
  b.setAttribute('aria-pressed', String(on));
  b.classList.toggle('off', !on);
}

$('mic').addEventListener('click', () => {
  if (!session) return;
  const on = !session.micOn;
  session.setMic(on);
  setPressed('mic', on);
});
$('cam').addEventListener('click', () => {
  if (!session) return;
  const on = !session.camOn;
  session.setCamera(on);
  setPressed('cam', on);
  $('self-tile').classList.toggle('no-video', !on);
});
$('hangup').addEventListener('click', () => {
  session?.hangup();
  location.href = roomUrl(session?.room || '');
});
$('rejoin').addEventListener('click', () => location.reload());

const room = params.get('room');
const name = params.get('name');
if (room && name && params.get('autojoin') === '1') {
  join(room, name);
} else {
  showStart();
}
