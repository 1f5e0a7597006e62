// @ts-check
/**
 * The chat panel of the call page and the viewer page: a button with the number of
 * unread messages, a panel with the room's messages and a line to write one. Messages
 * come from the session's `chat`, `chatHistory` and `chatRefused` events and are
 * shown as text (textContent), never as markup. `ChatState` (no DOM) keeps the
 * messages and the unread count; `mountChat` draws them.
 */

import { t, lang } from './i18n.js';

/** @typedef {import('./signaling.js').ChatLine} ChatLine */

/** The words of the panel, in the page's language (web/lang/). */
const TEXT = {
  get title() { return t('chat.title'); },
  get open() { return t('chat.open'); },
  get close() { return t('chat.close'); },
  unread: (/** @type {number} */ n) => t('chat.unread', { n }),
  get placeholder() { return t('chat.placeholder'); },
  get send() { return t('chat.send'); },
  get empty() { return t('chat.empty'); },
  get readOnly() { return t('chat.readOnly'); },
  get you() { return t('chat.you'); },
  get viewer() { return t('chat.viewer'); },
  get notSent() { return t('chat.notSent'); },
};

/**
 * Why the server refused a message, in the page's language: by its code, or the
 * server's own sentence (English, with the limit in it) where there is no
 * translation.
 * @param {string} code
 * @param {string} message
 */
export function refusalText(code, message) {
  const key = `chat.refused.${code}`;
  const text = t(key);
  return lang() === 'en' || text === key ? message : text;
}

/** Most messages the page keeps (the server sends at most its history, then live ones). */
export const MAX_SHOWN = 500;

/** The messages of the room as this page knows them, and how many are unread. */
export class ChatState {
  /** @param {number} now the time (ms since the epoch) an `agoMs` is counted from */
  constructor(now = Date.now()) {
    /** @type {(ChatLine & {at: number})[]} */
    this.messages = [];
    this.unread = 0;
    /** Highest message id seen: a history after a resume counts only newer ones as unread. */
    this.lastId = -1;
    /** This page's participant id: its own messages are never unread. */
    this.self = 0;
    this.open = false;
    this.now = now;
  }

  /**
   * The room's history (on join, and after a resume): replaces what is shown.
   * @param {ChatLine[]} lines
   * @param {number} now
   */
  history(lines, now = Date.now()) {
    this.messages = lines.slice(-MAX_SHOWN).map((l) => ({ ...l, at: now - (l.agoMs || 0) }));
    if (!this.open) {
      this.unread += lines.filter((l) => l.id > this.lastId && l.from !== this.self).length;
    }
    for (const l of lines) this.lastId = Math.max(this.lastId, l.id);
  }

  /**
   * A new message; false when it was already shown (a resume's history had it).
   * @param {ChatLine} line
   * @param {number} now
   */
  add(line, now = Date.now()) {
    if (this.messages.some((m) => m.id === line.id)) return false;
    this.messages.push({ ...line, at: now - (line.agoMs || 0) });
    if (this.messages.length > MAX_SHOWN) this.messages.shift();
    if (!this.open && line.from !== this.self && line.id > this.lastId) this.unread++;
    this.lastId = Math.max(this.lastId, line.id);
    return true;
  }

  /** @param {boolean} open */
  setOpen(open) {
    this.open = open;
    if (open) this.unread = 0;
  }
}

/** @param {number} at */
function clock(at) {
  return new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * Draws the chat of `session` into the page: `button` opens `panel`.
 * @param {HTMLButtonElement} button
 * @param {HTMLElement} panel
 * @param {import('./session.js').CallSession} session
 */
export function mountChat(button, panel, session) {
  const state = new ChatState();
  panel.replaceChildren();
  const head = document.createElement('div');
  head.className = 'panel-head';
  const title = document.createElement('h2');
  title.textContent = TEXT.title;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'close';
  close.textContent = '✕';
  close.title = TEXT.close;
  close.setAttribute('aria-label', TEXT.close);
  head.append(title, close);
  const list = document.createElement('ol');
  list.className = 'chat-list';
  list.setAttribute('aria-live', 'polite');
  const empty = document.createElement('p');
  empty.className = 'panel-note chat-empty';
  empty.textContent = TEXT.empty;
  const notice = document.createElement('p');
  notice.className = 'chat-notice';
  notice.setAttribute('role', 'alert');
  notice.hidden = true;
  const readOnly = document.createElement('p');
  readOnly.className = 'panel-note chat-readonly';
  readOnly.textContent = TEXT.readOnly;
  readOnly.hidden = true;
  const form = document.createElement('form');
  form.className = 'chat-form';
  const input = document.createElement('input');
  input.type = 'text';
  input.name = 'chat';
  input.autocomplete = 'off';
  input.placeholder = TEXT.placeholder;
  input.setAttribute('aria-label', TEXT.placeholder);
  input.maxLength = 1000;
  const send = document.createElement('button');
  send.type = 'submit';
  send.className = 'primary';
  send.textContent = TEXT.send;
  form.append(input, send);
  panel.append(head, list, empty, notice, readOnly, form);

  const badge = document.createElement('span');
  badge.className = 'chat-unread';
  badge.hidden = true;
  button.append(badge);

  /** @param {ChatLine & {at: number}} m */
  const item = (m) => {
    const li = document.createElement('li');
    li.className = 'chat-msg';
    li.dataset.id = String(m.id);
    if (m.from === state.self) li.classList.add('mine');
    const who = document.createElement('span');
    who.className = 'chat-who';
    who.textContent = m.from === state.self ? TEXT.you : m.name;
    if (m.role === 'viewer') {
      const role = document.createElement('span');
      role.className = 'chat-role';
      role.textContent = TEXT.viewer;
      who.append(' ', role);
    }
    const time = document.createElement('time');
    time.dateTime = new Date(m.at).toISOString();
    time.textContent = clock(m.at);
    const text = document.createElement('p');
    text.className = 'chat-text';
    // Text, never markup: `<script>` in a message is shown as the characters it is.
    text.textContent = m.text;
    li.append(who, time, text);
    return li;
  };

  const renderBadge = () => {
    badge.textContent = state.unread > 99 ? '99+' : String(state.unread);
    badge.hidden = state.unread === 0;
    const label = state.unread ? `${TEXT.open} (${TEXT.unread(state.unread)})` : TEXT.open;
    button.setAttribute('aria-label', label);
    button.title = label;
  };
  const stickToEnd = () => {
    list.scrollTop = list.scrollHeight;
  };
  // Another language chosen with the page's switch: the panel's words follow.
  document.addEventListener('langchange', () => {
    title.textContent = TEXT.title;
    close.title = TEXT.close;
    close.setAttribute('aria-label', TEXT.close);
    empty.textContent = TEXT.empty;
    readOnly.textContent = TEXT.readOnly;
    input.placeholder = TEXT.placeholder;
    input.setAttribute('aria-label', TEXT.placeholder);
    send.textContent = TEXT.send;
    renderAll();
    renderBadge();
  });
  const renderAll = () => {
    list.replaceChildren(...state.messages.map(item));
    empty.hidden = state.messages.length > 0;
    stickToEnd();
  };
  /** @param {boolean} open */
  const setOpen = (open) => {
    state.setOpen(open);
    panel.hidden = !open;
    button.setAttribute('aria-pressed', String(open));
    renderBadge();
    if (open) {
      stickToEnd();
      if (!form.hidden) input.focus();
    }
  };

  session.addEventListener('joined', (ev) => {
    state.self = /** @type {CustomEvent} */ (ev).detail.id;
  });
  session.addEventListener('chatHistory', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    state.self = session.id || state.self;
    state.history(d.messages);
    form.hidden = !d.canWrite;
    readOnly.hidden = d.canWrite;
    if (d.maxLength) input.maxLength = d.maxLength;
    button.hidden = false;
    renderAll();
    renderBadge();
  });
  session.addEventListener('chat', (ev) => {
    const { message } = /** @type {CustomEvent} */ (ev).detail;
    state.self = session.id || state.self;
    if (!state.add(message)) return;
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 40;
    list.append(item(state.messages[state.messages.length - 1]));
    while (list.children.length > state.messages.length) list.firstElementChild?.remove();
    empty.hidden = true;
    if (atEnd || message.from === state.self) stickToEnd();
    if (message.from === state.self) notice.hidden = true;
    renderBadge();
  });
  session.addEventListener('chatRefused', (ev) => {
    const d = /** @type {CustomEvent} */ (ev).detail;
    notice.textContent = refusalText(d.code, d.message);
    notice.dataset.code = d.code;
    notice.hidden = false;
  });

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (!session.sendChat(text)) {
      // Not connected (the page is reconnecting): the text stays, to send again.
      notice.textContent = TEXT.notSent;
      notice.dataset.code = 'notSent';
      notice.hidden = false;
      return;
    }
    input.value = '';
    notice.hidden = true;
  });
  button.addEventListener('click', () => setOpen(panel.hidden));
  close.addEventListener('click', () => setOpen(false));
  panel.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') setOpen(false);
  });
  renderBadge();
  return state;
}
