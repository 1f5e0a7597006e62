// Unit tests of web/autoplay.js: which refusals of `play()` show the "Tap to play
// sound" prompt. Only a blocked autoplay (NotAllowedError) does; the AbortError that a
// source switch causes (relay <-> direct) never does.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { onPlayRejected } from '../../web/autoplay.js';

/** A DOMException-like rejection. */
const err = (name) => ({ name, message: `${name} from play()` });
const showing = { current: true, paused: true };

test('blocked autoplay asks the user to tap', () => {
  assert.equal(onPlayRejected(err('NotAllowedError'), showing), 'prompt');
  assert.equal(onPlayRejected(err('NotAllowedError'), { current: true, paused: false }), 'prompt');
});

test('a play interrupted by a source switch never shows the prompt', () => {
  // The path switch replaced the stream: the new stream's own play() decides.
  assert.equal(onPlayRejected(err('AbortError'), { current: false, paused: false }), 'ignore');
  assert.equal(onPlayRejected(err('AbortError'), { current: false, paused: true }), 'ignore');
  // The element already plays: nothing to do.
  assert.equal(onPlayRejected(err('AbortError'), { current: true, paused: false }), 'ignore');
  // Interrupted and left paused on this stream: play again, still no prompt.
  assert.equal(onPlayRejected(err('AbortError'), showing), 'retry');
});

test('a blocked play for a stream the tile no longer shows is not prompted for', () => {
  assert.equal(onPlayRejected(err('NotAllowedError'), { current: false, paused: true }), 'ignore');
});

test('other refusals, and odd rejection values, show no prompt', () => {
  assert.equal(onPlayRejected(err('NotSupportedError'), showing), 'ignore');
  assert.equal(onPlayRejected(new Error('boom'), showing), 'ignore');
  assert.equal(onPlayRejected(undefined, showing), 'ignore');
  assert.equal(onPlayRejected(null, showing), 'ignore');
});

test('a real DOMException is read by its name', () => {
  assert.equal(onPlayRejected(new DOMException('interrupted by a new load request', 'AbortError'), { current: false, paused: true }), 'ignore');
  assert.equal(onPlayRejected(new DOMException('user didn\'t interact', 'NotAllowedError'), showing), 'prompt');
});
