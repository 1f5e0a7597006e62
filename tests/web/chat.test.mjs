// The chat panel's state without a DOM: the history replaces what is shown, unread
// counts others' messages while the panel is closed (never one's own, never a message
// seen before a resume), and the times shown come from each message's age.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatState, MAX_SHOWN } from '../../web/chat.js';
import { Signaling } from '../../web/signaling.js';

const line = (id, from, text = `m${id}`, agoMs = 0) => ({ id, from, name: `p${from}`, role: 'participant', text, agoMs });

test('a late joiner: the history counts as unread until the panel opens', () => {
  const s = new ChatState();
  s.self = 9;
  s.history([line(0, 1, 'a', 60_000), line(1, 9, 'mine', 30_000), line(2, 2, 'b', 1_000)], 1_000_000);
  assert.deepEqual(s.messages.map((m) => m.text), ['a', 'mine', 'b']);
  assert.equal(s.messages[0].at, 940_000, 'its time is now minus its age');
  assert.equal(s.unread, 2, 'not my own');
  s.setOpen(true);
  assert.equal(s.unread, 0);
  assert.ok(s.add(line(3, 1)));
  assert.equal(s.unread, 0, 'read as it comes while the panel is open');
  s.setOpen(false);
  s.add(line(4, 1));
  s.add(line(5, 9));
  assert.equal(s.unread, 1, "others' messages only");
});

test('after a resume: the history replaces the list and counts only what is new', () => {
  const s = new ChatState();
  s.self = 9;
  s.history([line(0, 1), line(1, 2)]);
  s.setOpen(true);
  s.setOpen(false);
  // Missed while the connection was down: 2 and 3.
  s.history([line(0, 1), line(1, 2), line(2, 1), line(3, 2)]);
  assert.equal(s.unread, 2);
  assert.equal(s.messages.length, 4);
  assert.equal(s.add(line(3, 2)), false, 'a message already shown is not added twice');
  assert.equal(s.unread, 2);
});

test('the list is bounded', () => {
  const s = new ChatState();
  for (let i = 0; i < MAX_SHOWN + 10; i++) s.add(line(i, 1));
  assert.equal(s.messages.length, MAX_SHOWN);
  assert.equal(s.messages[0].id, 10);
  assert.equal(s.unread, MAX_SHOWN + 10);
});

test('a message is reported as not sent while there is no open socket', () => {
  // Node before 22 has no WebSocket; only its OPEN constant is read here.
  /** @type {any} */ (globalThis).WebSocket ??= { OPEN: 1 };
  const sig = new Signaling('wss://127.0.0.1:9/');
  assert.equal(sig.send({ type: 'chat', text: 'hi' }), false, 'never opened');
  let sent = '';
  sig.ws = /** @type {any} */ ({ readyState: 3, send(/** @type {string} */ d) { sent = d; } });
  assert.equal(sig.send({ type: 'chat', text: 'hi' }), false, 'closed');
  assert.equal(sent, '');
  sig.ws = /** @type {any} */ ({ readyState: 1, send(/** @type {string} */ d) { sent = d; } });
  assert.equal(sig.send({ type: 'chat', text: 'hi' }), true, 'open');
  assert.deepEqual(JSON.parse(sent), { type: 'chat', text: 'hi' });
});
