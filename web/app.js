// @ts-check
/**
 * The page: start form, call view, tiles and controls. It drives a CallSession and
 * renders its events; it never speaks the signaling protocol itself.
 *
 * Deep links: /?room=R&name=N pre-fills the form; &autojoin=1 joins at once;
 * &mode=relay|direct|auto picks the call path (default auto);
 * &role=viewer watches without sending (a player page);
 * &quality=auto|high|low sets the received video quality; &simulcast=0 sends one layer;
 * &token=T joins a room protected with a token;
 * &vcodec=h264|vp8 makes this page send that video codec.
 */
import { CallSession } from './session.js';
import { mountComparePanel } from './compare.js';
import { mountChat } from './chat.js';
import { onPlayRejected } from './autoplay.js';

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
function roomUrl(room, mode = '', role = '') {
  const u = new URL('/', location.href);
  u.searchParams.set('room', room);
  if (mode && mode !== 'auto') u.searchParams.set('mode', mode);
  if (role) u.searchParams.set('role', role);
  const token = params.get('token');
  if (token) u.searchParams.set('token', token);
  return u.toString();
}

const viewer = params.get('role') === 'viewer';
/** Resize reports, per participant, sent at most every 300 ms. */
/** @type {Map<number, ReturnType<typeof setTimeout>>} */
const renderTimers = new Map();
const resizeObserver = new ResizeObserver((entries) => {
  for (const e of entries) {
    const tile = /** @type {HTMLElement} */ (e.target);
    const id = Number(tile.dataset.peer);
    clearTimeout(renderTimers.get(id));
    renderTimers.set(id, setTimeout(() => {
      const dpr = window.devicePixelRatio || 1;
      session?.sendRender(id, tile.clientWidth * dpr, tile.clientHeight * dpr);
    }, 300));
  }
});

const MODES = ['auto', 'relay', 'direct'];
/** The mode asked for in the link, else auto. */
function linkMode() {
  const m = params.get('mode') || '';
  return MODES.includes(m) ? m : 'auto';
}

/** The mode chosen on the start page. */
function formMode() {
  const checked = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name="mode"]:checked'));
  return checked?.value || 'auto';
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
  const mode = linkMode();
  document.querySelectorAll('input[name="mode"]').forEach((el) => {
    const input = /** @type {HTMLInputElement} */ (el);
    input.checked = input.value === mode;
    input.addEventListener('change', () => updateLink());
  });
  const updateLink = () => {
    const link = /** @type {HTMLAnchorElement} */ ($('room-link'));
    link.href = roomUrl(room.value.trim() || 'room', formMode());
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
    const m = formMode();
    u.searchParams.set('room', r);
    u.searchParams.set('name', n);
    if (m === 'auto') u.searchParams.delete('mode');
    else u.searchParams.set('mode', m);
    u.searchParams.delete('autojoin');
    history.replaceState(null, '', u);
    join(r, n, m);
  });
  (name.value ? $('join') : name).focus();
}

/**
 * @param {string} room
 * @param {string} name
 * @param {string} mode
 */
async function join(room, name, mode) {
  $('start').hidden = true;
  $('call').hidden = false;
  $('failed').hidden = true;
  $('room-label').textContent = room;
  const share = /** @type {HTMLAnchorElement} */ ($('share-link'));
  share.href = roomUrl(room, mode);
  share.textContent = share.href;
  document.title = `${room} · lanrelay`;

  const directTimeoutMs = Number(params.get('directTimeout')) * 1000 || undefined;
  document.body.classList.toggle('viewer', viewer);
  const s = new CallSession({
    room,
    name,
    mode,
    videoCodec: params.get('vcodec') || '',
    directTimeoutMs,
    role: viewer ? 'viewer' : 'participant',
    simulcast: params.get('simulcast') !== '0',
    token: params.get('token') || '',
  });
  const quality = params.get('quality');
  if (quality === 'high' || quality === 'low') {
    s.quality = quality;
    /** @type {HTMLSelectElement} */ ($('quality')).value = quality;
  }
  s.addEventListener('viewers', (ev) => {
    const { count } = /** @type {CustomEvent} */ (ev).detail;
    $('watching').textContent = count ? `· ${count} watching` : '';
  });
  s.addEventListener('layer', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    const tile = tiles.get(d.peerId);
    if (tile) tile.dataset.layer = `layer ${d.index + 1}/${d.count} (${d.rid})`;
  });
  session = s;
  // For tests and debugging from the console.
  /** @type {any} */ (window).lanrelay = { session: s };
  s.addEventListener('state', (ev) => renderState(/** @type {CustomEvent} */ (ev).detail));
  s.addEventListener('peers', () => renderPeers(s));
  s.addEventListener('stream', (ev) => {
    const { peerId } = /** @type {CustomEvent} */ (ev).detail;
    showActiveStream(peerId);
  });
  s.addEventListener('path', (ev) => {
    const { path, reason } = /** @type {CustomEvent} */ (ev).detail;
    $('path-reason').textContent = `${path === 'direct' ? 'Direct' : 'Relayed'}: ${reason}`;
    for (const id of s.peers.keys()) showActiveStream(id);
  });
  s.addEventListener('joined', (ev) => {
    const { mode: roomMode } = /** @type {CustomEvent} */ (ev).detail;
    if (roomMode !== mode) $('path-reason').textContent = `This room is a ${roomMode} call (chosen by whoever opened it).`;
  });
  // A phone back on a network, or a screen unlocked: recover the call in place if
  // its connections did not survive (the session checks).
  window.addEventListener('online', () => s.networkChanged());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') s.networkChanged('the screen was unlocked');
  });
  mountComparePanel($('compare'), s);
  mountChat(/** @type {HTMLButtonElement} */ ($('chat-button')), $('chat'), s);
  try {
    await s.start();
  } catch (e) {
    renderState({ state: 'failed', reason: String(e) });
    return;
  }
  if (viewer) return;
  const self = /** @type {HTMLVideoElement} */ ($('self-video'));
  self.srcObject = s.localStream;
  const hasVideo = !!s.localStream?.getVideoTracks().length;
  $('self-tile').classList.toggle('no-video', !hasVideo);
  setPressed('mic', !!s.localStream?.getAudioTracks().length);
  setPressed('cam', hasVideo);
}

/** @param {{state: string, reason?: string, path?: string, canRelay?: boolean}} d */
function renderState(d) {
  const status = $('status');
  status.dataset.state = d.state;
  status.dataset.path = d.path || '';
  const text = {
    connecting: d.reason ? `Connecting… (${d.reason})` : 'Connecting…',
    connected: d.path === 'direct' ? 'Connected · direct (peer to peer)' : 'Connected · relayed via server',
    reconnecting: d.reason ? `Reconnecting: ${d.reason}` : 'Reconnecting…',
    failed: `Failed: ${d.reason || 'unknown error'}`,
    ended: 'Call ended',
  }[d.state] || d.state;
  $('status-text').textContent = text;
  if (d.state === 'connected' && d.reason) {
    $('path-reason').textContent = `${d.path === 'direct' ? 'Direct' : 'Relayed'}: ${d.reason}`;
  }
  if (d.state === 'failed') {
    $('failed-title').textContent = d.canRelay ? 'Direct connection failed' : 'Call ended';
    $('failed-reason').textContent = d.canRelay
      ? `${d.reason || ''}. The server can carry the call instead.`
      : d.reason || '';
    $('to-relay').hidden = !d.canRelay;
    $('rejoin').hidden = !!d.canRelay;
    $('failed').hidden = false;
  } else {
    $('failed').hidden = true;
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
    const note = /** @type {HTMLElement} */ (tile.querySelector('.note'));
    note.textContent = info.codecNote || '';
    note.hidden = !info.codecNote;
    showActiveStream(id);
    const badge = pathBadge(tile);
    badge.textContent = info.path ? (info.path === 'direct' ? 'direct' : 'relayed') : '';
  }
  const n = s.peers.size;
  $('count').textContent = viewer ? (n ? `· ${n} presenting` : '') : n ? `· ${n + 1} in call` : '';
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
  cap.innerHTML = '<span class="who"></span><span class="badges"></span><span class="path-badge"></span>';
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  const info = document.createElement('div');
  info.className = 'live-info';
  // Why there is no picture, when the server knows (a codec this browser cannot decode).
  const note = document.createElement('p');
  note.className = 'note';
  note.hidden = true;
  tile.append(video, avatar, cap, info, note);
  $('tiles').append(tile);
  tiles.set(id, tile);
  resizeObserver.observe(tile);
  return tile;
}

/** @param {HTMLElement} tile */
function pathBadge(tile) {
  return /** @type {HTMLElement} */ (tile.querySelector('.path-badge'));
}

/**
 * Shows a participant's media from the path the call is received on (or the other
 * path while that one has nothing yet).
 * @param {number} peerId
 */
function showActiveStream(peerId) {
  if (!session) return;
  const primary = session.path === 'direct' ? session.streams.direct : session.streams.relay;
  const other = session.path === 'direct' ? session.streams.relay : session.streams.direct;
  const stream = primary.get(peerId) || other.get(peerId);
  if (stream) attachStream(peerId, stream);
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
    playIn(tile, video, stream);
  }
  const name = session?.peers.get(peerId)?.name || '';
  /** @type {HTMLElement} */ (tile.querySelector('.avatar')).textContent = (name[0] || '?').toUpperCase();
}

/**
 * Plays `stream` in a tile's video. Only a blocked autoplay (not the AbortError of a
 * path switch replacing the stream) shows "Tap to play sound" (autoplay.js).
 * @param {HTMLElement} tile
 * @param {HTMLVideoElement} video
 * @param {MediaStream} stream
 */
function playIn(tile, video, stream, retried = false) {
  video.play().then(() => {
    if (video.srcObject === stream) tile.classList.remove('tap-to-play');
  }, (e) => {
    const action = onPlayRejected(e, { current: video.srcObject === stream, paused: video.paused });
    console.debug(`play() refused: ${e?.name} (${action})`);
    if (action === 'retry' && !retried) playIn(tile, video, stream, true);
    if (action !== 'prompt' || tile.classList.contains('tap-to-play')) return;
    tile.classList.add('tap-to-play');
    tile.addEventListener('click', () => {
      tile.classList.remove('tap-to-play');
      if (video.srcObject instanceof MediaStream) playIn(tile, video, video.srcObject);
    }, { once: true });
  });
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
  location.href = roomUrl(session?.room || '', session?.requestedMode);
});
$('rejoin').addEventListener('click', () => location.reload());
$('to-relay').addEventListener('click', () => {
  $('failed').hidden = true;
  session?.switchToRelay();
});
$('quality').addEventListener('change', () => {
  const q = /** @type {HTMLSelectElement} */ ($('quality')).value;
  session?.setQuality(/** @type {'auto'|'high'|'low'} */ (q));
});
$('watch').addEventListener('click', () => {
  const url = roomUrl(session?.room || '', '', 'viewer');
  const link = /** @type {HTMLAnchorElement} */ ($('watch-link'));
  link.href = url;
  link.textContent = url;
  /** @type {HTMLImageElement} */ ($('watch-qr')).src = `/qr.svg?text=${encodeURIComponent(url)}`;
  navigator.clipboard?.writeText(url).catch(() => {});
  $('watch-box').hidden = false;
});
$('watch-close').addEventListener('click', () => ($('watch-box').hidden = true));
$('pip').addEventListener('click', async () => {
  const video = /** @type {HTMLVideoElement | null} */ (document.querySelector('video.remote'));
  if (!video) return;
  if (document.pictureInPictureElement) await document.exitPictureInPicture();
  else await video.requestPictureInPicture().catch((e) => console.warn('picture in picture', e));
});
$('info').addEventListener('click', () => {
  const on = !document.body.classList.contains('show-info');
  document.body.classList.toggle('show-info', on);
  $('info').setAttribute('aria-pressed', String(on));
});
// Live quality of each remote video, shown on demand.
setInterval(async () => {
  if (!session || !document.body.classList.contains('show-info')) return;
  const pc = session.relay?.pc;
  const report = pc ? await pc.getStats() : null;
  /** @type {Map<string, any>} */
  const byTrack = new Map();
  report?.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video' && r.trackIdentifier) byTrack.set(r.trackIdentifier, r);
  });
  for (const [id, tile] of tiles) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const stream = /** @type {MediaStream | null} */ (video.srcObject);
    const track = stream?.getVideoTracks()[0];
    const r = track && byTrack.get(track.id);
    const prev = /** @type {any} */ (tile).prevStats;
    const kbps = r && prev ? Math.round(((r.bytesReceived - prev.bytesReceived) * 8) / (r.timestamp - prev.timestamp)) : 0;
    /** @type {any} */ (tile).prevStats = r;
    const layer = tile.dataset.layer || 'single layer';
    /** @type {HTMLElement} */ (tile.querySelector('.live-info')).textContent =
      `${layer} · ${video.videoWidth}×${video.videoHeight} · ${r?.framesPerSecond ?? 0} fps · ${kbps} kbit/s`;
    void id;
  }
}, 1000);
$('stats').addEventListener('click', () => {
  const panel = $('compare');
  panel.hidden = !panel.hidden;
  $('stats').setAttribute('aria-pressed', String(!panel.hidden));
});

const room = params.get('room');
const name = params.get('name');
if (viewer && room) {
  // A player page: no form, no camera.
  $('pip').hidden = false;
  $('info').hidden = false;
  join(room, name || 'viewer', 'relay');
} else if (room && name && params.get('autojoin') === '1') {
  join(room, name, linkMode());
} else {
  showStart();
}
