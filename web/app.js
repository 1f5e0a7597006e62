// @ts-check
/**
 * The page: start form, call view, tiles and controls. It drives a CallSession and
 * renders its events; it never speaks the signaling protocol itself.
 *
 * Deep links: /?room=R&name=N pre-fills the form; &autojoin=1 joins at once;
 * &mode=relay|direct|auto picks the call path (default auto);
 * &role=viewer watches without sending (a player page);
 * &quality=auto|high|low sets the received video quality; &simulcast=0 sends one layer;
 * &screenSimulcast=1 sends a screen share in three layers (default: one, hinted `detail`);
 * &token=T joins a room protected with a token;
 * &host=T joins as the room's host (T: the room's token or the operator token);
 * &vcodec=h264|vp8 makes this page send that video codec.
 */
import { CallSession } from './session.js';
import { redirectTarget, reachable } from './signaling.js';
import { mountComparePanel } from './compare.js';
import { mountChat } from './chat.js';
import { onPlayRejected } from './autoplay.js';
import { t, reasonText, errorText } from './i18n.js';

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
/**
 * What the page last showed, kept to render it again in another language.
 * @type {{state: {state: string, reason?: string, path?: string, canRelay?: boolean} | null,
 *         note: {path: string, reason: string} | {roomMode: string} | null, viewers: number,
 *         localScreen: MediaStream | null, screenNote: string}}
 */
const shown = { state: null, note: null, viewers: 0, localScreen: null, screenNote: '' };
/** The server's error messages seen, to show them from their code: message → code. */
const serverErrors = new Map();
/** @param {string | undefined} reason */
const why = (reason) => reasonText(reason, serverErrors);
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
    screenSimulcast: params.get('screenSimulcast') === '1',
    token: params.get('token') || '',
    hostToken: params.get('host') || '',
  });
  const quality = params.get('quality');
  if (quality === 'high' || quality === 'low') {
    s.quality = quality;
    /** @type {HTMLSelectElement} */ ($('quality')).value = quality;
  }
  s.addEventListener('viewers', (ev) => {
    shown.viewers = /** @type {CustomEvent} */ (ev).detail.count;
    renderWatching();
  });
  s.addEventListener('layer', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    const tile = tiles.get(d.peerId);
    if (tile) tile.dataset.layer = JSON.stringify({ i: d.index + 1, n: d.count, rid: d.rid });
  });
  // In a cluster: another node serves this room; the page moves there, to the first
  // of it and the other nodes it knows that answers. A node that just died may still
  // be named for a few seconds: when none answers, the page asks this node again (a
  // reload places it anew) if this node answers, else keeps trying the others.
  s.addEventListener('redirect', async (ev) => {
    const first = /** @type {CustomEvent} */ (ev).detail.url;
    for (;;) {
      for (const url of [first, ...s.nodes.filter((u) => u !== first)]) {
        const target = redirectTarget(url, location);
        if (target && (await reachable(url))) {
          location.replace(target);
          return;
        }
      }
      renderState({ state: 'reconnecting', reason: 'looking for a server of this room' });
      await new Promise((r) => setTimeout(r, 1500));
      if (await reachable(location.origin)) {
        location.reload();
        return;
      }
    }
  });
  s.addEventListener('serverError', (ev) => {
    const { code, message } = /** @type {CustomEvent} */ (ev).detail;
    serverErrors.set(message, code);
    // The host's Record refused (a direct call, a server that records nothing).
    if (code === 'notRecordable' || code === 'recordingOff') $('path-reason').textContent = errorText(code, message);
  });
  session = s;
  // For tests and debugging from the console.
  /** @type {any} */ (window).lanrelay = { session: s };
  s.addEventListener('state', (ev) => renderState(/** @type {CustomEvent} */ (ev).detail));
  s.addEventListener('peers', () => {
    renderPeers(s);
    renderStage(s);
  });
  s.addEventListener('speaker', () => renderSpeaker(s));
  s.addEventListener('room', () => renderRoom(s));
  s.addEventListener('held', (ev) => renderHeld(s, /** @type {CustomEvent} */ (ev).detail.refused));
  s.addEventListener('recording', () => renderRecording(s));
  s.addEventListener('recordingAccess', (ev) => {
    // The host's key to the room's recordings, where /recordings reads it: a cookie
    // for that path only, never sent elsewhere nor over plain HTTP, one per key so
    // that the rooms this browser hosted stay open to it.
    const { key } = /** @type {CustomEvent} */ (ev).detail;
    document.cookie = `lanrelay-rec-${key.slice(0, 8)}=${key}; path=/recordings; max-age=${7 * 86400}; secure; samesite=strict`;
    renderRecordButton(s);
  });
  s.addEventListener('screen', () => renderStage(s));
  s.addEventListener('localScreen', (ev) => {
    shown.localScreen = /** @type {CustomEvent} */ (ev).detail.stream;
    setPressed('screen', !!shown.localScreen);
    renderStage(s);
  });
  s.addEventListener('screenRefused', (ev) => {
    const { code } = /** @type {CustomEvent} */ (ev).detail;
    const sharer = [...s.peers.values()].find((p) => p.screen);
    shown.screenNote = code === 'screenBusy' && sharer ? t('screen.busyName', { name: sharer.name }) : t(`error.${code}`);
    renderScreenNote();
  });
  s.addEventListener('stream', (ev) => {
    const { peerId } = /** @type {CustomEvent} */ (ev).detail;
    showActiveStream(peerId);
  });
  s.addEventListener('path', (ev) => {
    const { path, reason } = /** @type {CustomEvent} */ (ev).detail;
    shown.note = { path, reason };
    renderNote();
    for (const id of s.peers.keys()) showActiveStream(id);
  });
  s.addEventListener('joined', (ev) => {
    const { mode: roomMode } = /** @type {CustomEvent} */ (ev).detail;
    // A share goes through the server: not in a direct call, nor where the browser
    // cannot capture a screen (most phones, which can still watch one).
    $('screen').hidden = viewer || roomMode === 'direct' || !CallSession.canShareScreen();
    if (roomMode !== mode) {
      shown.note = { roomMode };
      renderNote();
    }
  });
  renderNote();
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

/**
 * The line under the bar: which path this page receives on and why, or the room's mode
 * when it is not the one asked for. A viewer always receives through the server,
 * whatever path the participants use between them, and is told just that.
 */
function renderNote() {
  const n = shown.note;
  let text = '';
  if (viewer) text = t('viewer.path');
  else if (n && 'roomMode' in n) text = t('call.roomMode', { mode: t(`mode.${n.roomMode}`) });
  else if (n) text = t(n.path === 'direct' ? 'path.direct' : 'path.relayed', { reason: why(n.reason) });
  $('path-reason').textContent = text;
}

function renderWatching() {
  $('watching').textContent = shown.viewers ? t('call.watching', { n: shown.viewers }) : '';
}

/** @param {{state: string, reason?: string, path?: string, canRelay?: boolean}} d */
function renderState(d) {
  shown.state = d;
  const status = $('status');
  status.dataset.state = d.state;
  status.dataset.path = d.path || '';
  const reason = why(d.reason);
  const connected = viewer ? 'state.connectedViewer' : d.path === 'direct' ? 'state.connectedDirect' : 'state.connectedRelay';
  const text = {
    connecting: reason ? t('state.connectingWhy', { reason }) : t('state.connecting'),
    connected: t(connected),
    reconnecting: reason ? t('state.reconnectingWhy', { reason }) : t('state.reconnecting'),
    failed: t('state.failed', { reason: reason || t('state.unknownError') }),
    ended: t('state.ended'),
  }[d.state] || d.state;
  $('status-text').textContent = text;
  if (d.state === 'connected' && d.reason) {
    shown.note = { path: d.path || 'relay', reason: d.reason };
    renderNote();
  }
  if (d.state === 'failed') {
    $('failed-title').textContent = t(d.canRelay ? 'failed.direct' : 'failed.ended');
    $('failed-reason').textContent = d.canRelay ? t('failed.canRelay', { reason }) : reason;
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
    tile.classList.toggle('sharing', !!info.screen);
    tile.classList.toggle('muted', !info.audio);
    /** @type {HTMLElement} */ (tile.querySelector('.badges')).textContent = info.audio ? '' : t('tile.muted');
    const note = /** @type {HTMLElement} */ (tile.querySelector('.note'));
    const gap = info.codecGap;
    note.textContent = gap ? t(gap.switchable ? 'codec.asked' : 'codec.stuck', { who: info.name, codec: gap.codec }) : '';
    note.hidden = !gap;
    showActiveStream(id);
    // The path of the call with that participant; a viewer receives everyone
    // through the server, so a participant's own path says nothing to it.
    const badge = pathBadge(tile);
    badge.textContent = info.path && !viewer ? t(info.path === 'direct' ? 'tile.direct' : 'tile.relayed') : '';
  }
  renderHostControls(s);
  const n = s.peers.size;
  $('count').textContent = viewer ? (n ? t('call.presenting', { n }) : '') : n ? t('call.inCall', { n: n + 1 }) : '';
  $('alone').hidden = n > 0 || s.state === 'failed';
  $('tiles').dataset.count = String(Math.min(n + 1, 9));
  renderSpeaker(s);
}

/**
 * Who hosts (a badge on the tile, yours too), whether the room is locked (for
 * everyone), and the host's own controls: Lock/Unlock, and per tile.
 * @param {CallSession} s
 */
function renderRoom(s) {
  /** @type {HTMLElement} */ ($('self-tile').querySelector('.host-badge')).hidden = !s.isHost;
  $('locked').hidden = !s.locked;
  const lock = $('lock');
  lock.hidden = viewer || !s.isHost;
  lock.setAttribute('aria-pressed', String(s.locked));
  lock.classList.toggle('off', s.locked);
  const key = s.locked ? 'host.unlock' : 'host.lock';
  /** @type {HTMLElement} */ (lock.querySelector('.label')).textContent = t(key);
  lock.title = t(s.locked ? 'host.unlockTitle' : 'host.lockTitle');
  const shares = $('shares');
  shares.hidden = viewer || !s.isHost || s.mode === 'direct';
  shares.setAttribute('aria-pressed', String(s.manyShares));
  /** @type {HTMLElement} */ (shares.querySelector('.label')).textContent = t(s.manyShares ? 'host.oneShare' : 'host.allowShares');
  shares.title = t(s.manyShares ? 'host.oneShareTitle' : 'host.allowSharesTitle');
  renderRecordButton(s);
  renderHostControls(s);
}

/**
 * The host's Record button (Stop recording while the room is recorded), and its link
 * to the room's recordings. Not for others, nor in a direct call (its media does not
 * pass through the server, which would refuse).
 * @param {CallSession} s
 */
function renderRecordButton(s) {
  const record = $('record');
  record.hidden = viewer || !s.isHost || s.mode === 'direct';
  record.setAttribute('aria-pressed', String(s.recording));
  record.classList.toggle('recording-on', s.recording);
  /** @type {HTMLElement} */ (record.querySelector('.label')).textContent = t(s.recording ? 'host.stopRecording' : 'host.record');
  record.title = t(s.recording ? 'host.stopRecordingTitle' : 'host.recordTitle');
  $('recordings-link').hidden = viewer || !s.isHost || !s.recordingKey;
}

/**
 * The host badge on each remote tile, and, on the host's page, its controls there:
 * mute (or allow to unmute, once muted), stop camera, remove, make host.
 * @param {CallSession} s
 */
function renderHostControls(s) {
  for (const [id, tile] of tiles) {
    const info = s.peers.get(id);
    /** @type {HTMLElement} */ (tile.querySelector('.host-badge')).hidden = s.hostId !== id;
    const box = /** @type {HTMLElement} */ (tile.querySelector('.host-controls'));
    box.hidden = viewer || !s.isHost;
    if (box.hidden || !info) continue;
    const held = s.heldPeers.has(id);
    for (const b of box.querySelectorAll('button')) {
      const button = /** @type {HTMLButtonElement} */ (b);
      const action = button.dataset.action || '';
      button.textContent = t(`host.${action}`, { who: info.name });
      button.title = t(`host.${action}Title`, { who: info.name });
      if (action === 'mute') button.hidden = held;
      if (action === 'allowUnmute') button.hidden = !held;
      if (action === 'stopVideo') button.disabled = !info.video;
      if (action === 'stopScreen') button.hidden = !info.screen;
    }
  }
}

/**
 * This page's microphone or camera as the host left it: off while held, with the mic
 * button saying so; a press on it while held says why nothing happens.
 * @param {CallSession} s
 * @param {boolean} [refused]
 */
function renderHeld(s, refused = false) {
  const mic = $('mic');
  mic.classList.toggle('held', s.held.audio);
  $('cam').classList.toggle('held', s.held.video);
  setPressed('mic', s.micOn);
  setPressed('cam', s.camOn);
  $('self-tile').classList.toggle('no-video', !s.camOn);
  const note = $('held-note');
  const what = s.held.audio && s.held.video ? 'host.heldBoth' : s.held.audio ? 'host.heldMic' : s.held.video ? 'host.heldCam' : '';
  const by = s.peers.get(s.held.by)?.name || t('host.theHost');
  if (what) note.textContent = t(what, { by }) + (refused ? ` ${t('host.heldRefused')}` : '');
  else if (s.held.by && !refused) note.textContent = t('host.allowed', { by });
  note.hidden = !what && !s.held.by;
  note.classList.toggle('refused', refused);
}

/** More remote tiles than this, and the speaker's tile is moved first. */
const SPEAKER_FIRST_OVER = 4;

/**
 * The "Recording" indicator, shown for as long as the server records the room; a
 * recording that stopped by itself says why, under the bar.
 * @param {CallSession} s
 */
function renderRecording(s) {
  $('recording').hidden = !s.recording;
  renderRecordButton(s);
  if (!s.recording && s.recordingMessage) {
    $('path-reason').textContent = t('call.recordingStopped', { reason: s.recordingMessage });
  }
}

/**
 * Outlines the active speaker's tile (yours too); with more than four others, moves
 * the speaker's tile first (CSS `order`: moving the element would restart its video)
 * and scrolls it into view.
 * @param {CallSession} s
 */
function renderSpeaker(s) {
  const id = s.speaker;
  $('self-tile').classList.toggle('speaking', id !== null && id === s.id);
  const front = tiles.size > SPEAKER_FIRST_OVER && id !== null ? tiles.get(id) : undefined;
  for (const [peer, tile] of tiles) {
    tile.classList.toggle('speaking', peer === id);
    const wasFront = tile.classList.contains('front');
    tile.classList.toggle('front', tile === front);
    if (tile === front && !wasFront) tile.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  }
}

/**
 * The large area: a participant's screen share (the first, if a room allows more), or
 * this page's own while it shares; the cameras go to a strip. Empty: the tiles again.
 * @param {CallSession} s
 */
function renderStage(s) {
  const video = /** @type {HTMLVideoElement} */ ($('stage-video'));
  const [remote] = s.screens.entries();
  const stream = remote ? remote[1] : shown.localScreen;
  $('call').classList.toggle('presenting', !!stream);
  $('stage').hidden = !stream;
  if (remote) {
    const name = s.peers.get(remote[0])?.name || '';
    $('stage-label').textContent = t('screen.of', { name });
    $('stage').dataset.sharer = String(remote[0]);
  } else {
    $('stage-label').textContent = stream ? t('screen.yours') : '';
    // Not `data-peer`: that names the tiles.
    if (stream) $('stage').dataset.sharer = String(s.id);
    else delete $('stage').dataset.sharer;
  }
  if (video.srcObject !== stream) {
    video.srcObject = stream;
    if (stream) video.play().catch((e) => console.debug(`stage play() refused: ${e?.name}`));
  }
}

/** Why this page's share was refused or stopped, for a few seconds. */
let screenNoteTimer = /** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined);
function renderScreenNote() {
  $('screen-note').textContent = shown.screenNote;
  $('screen-note').hidden = !shown.screenNote;
  clearTimeout(screenNoteTimer);
  if (shown.screenNote) {
    screenNoteTimer = setTimeout(() => {
      shown.screenNote = '';
      renderScreenNote();
    }, 8000);
  }
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
  cap.innerHTML = '<span class="who"></span><span class="host-badge" hidden></span><span class="badges"></span><span class="path-badge"></span>';
  /** @type {HTMLElement} */ (cap.querySelector('.host-badge')).textContent = t('host.badge');
  // The host's controls for this participant (renderHostControls shows them).
  const controls = document.createElement('div');
  controls.className = 'host-controls';
  controls.hidden = true;
  for (const action of ['mute', 'allowUnmute', 'stopVideo', 'stopScreen', 'remove', 'makeHost']) {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.action = action;
    b.addEventListener('click', (ev) => {
      ev.stopPropagation();
      session?.hostAction(/** @type {any} */ (action), id);
      if (session) renderHostControls(session);
    });
    controls.append(b);
  }
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  const info = document.createElement('div');
  info.className = 'live-info';
  // Why there is no picture, when the server knows (a codec this browser cannot decode).
  const note = document.createElement('p');
  note.className = 'note';
  note.hidden = true;
  tile.append(video, avatar, cap, info, note, controls);
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
    tile.dataset.tapLabel = t('tile.tapToPlay');
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
  // The button's title says what a press does.
  let title = {
    mic: on ? 'call.micOff' : 'call.micOn',
    cam: on ? 'call.camOff' : 'call.camOn',
    screen: on ? 'screen.stopTitle' : 'screen.shareTitle',
  }[id];
  // Held by the host: the button says who turned it off.
  if (id === 'mic' && session?.held.audio) title = 'host.micHeld';
  if (id === 'cam' && session?.held.video) title = 'host.camHeld';
  if (title) b.setAttribute('data-i18n-attr', `title:${title}`);
  if (title) b.title = t(title);
}

$('mic').addEventListener('click', () => {
  if (!session) return;
  // Refused while the host holds it (the session says why: renderHeld).
  session.setMic(!session.micOn);
  setPressed('mic', session.micOn);
});
$('cam').addEventListener('click', () => {
  if (!session) return;
  session.setCamera(!session.camOn);
  setPressed('cam', session.camOn);
  $('self-tile').classList.toggle('no-video', !session.camOn);
});
$('lock').addEventListener('click', () => {
  if (session) session.hostAction(session.locked ? 'unlock' : 'lock');
});
$('shares').addEventListener('click', () => {
  if (session) session.hostAction(session.manyShares ? 'oneShare' : 'allowShares');
});
$('record').addEventListener('click', () => {
  if (session) session.hostAction(session.recording ? 'stopRecording' : 'record');
});
$('screen').addEventListener('click', () => {
  if (!session) return;
  if (session.screenTrack) {
    session.stopScreen();
    return;
  }
  session.shareScreen().catch((e) => {
    // Cancelled in the browser's picker: nothing to say.
    if (e?.name === 'NotAllowedError' || e?.name === 'AbortError') return;
    shown.screenNote = t('screen.failed', { reason: String(e?.message || e) });
    renderScreenNote();
  });
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
    const layer = tile.dataset.layer ? t('tile.layer', JSON.parse(tile.dataset.layer)) : t('tile.singleLayer');
    /** @type {HTMLElement} */ (tile.querySelector('.live-info')).textContent =
      t('tile.live', { layer, w: video.videoWidth, h: video.videoHeight, fps: r?.framesPerSecond ?? 0, kbps });
    void id;
  }
}, 1000);
$('stats').addEventListener('click', () => {
  const panel = $('compare');
  panel.hidden = !panel.hidden;
  $('stats').setAttribute('aria-pressed', String(!panel.hidden));
});

// Another language chosen with the switch: the static text is updated by i18n.js; the
// text this file wrote is written again.
document.addEventListener('langchange', () => {
  if (session) document.title = `${session.room} · lanrelay`;
  if (shown.state) renderState(shown.state);
  renderNote();
  renderWatching();
  if (session) {
    renderPeers(session);
    renderStage(session);
    renderRoom(session);
    if (session.held.by) renderHeld(session);
  }
  for (const tile of tiles.values()) {
    if (tile.classList.contains('tap-to-play')) tile.dataset.tapLabel = t('tile.tapToPlay');
  }
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
