// @ts-check
/**
 * What to do when a video element's `play()` is refused. Pure, so that `node --test`
 * checks it (tests/web/autoplay.test.mjs); app.js carries the decision out.
 *
 * `play()` rejects for more than one reason, and only one of them needs the user:
 * - `NotAllowedError`: the browser blocked autoplay (with sound) until the user
 *   interacts with the page. Only a tap helps: show the "Tap to play sound" prompt.
 * - `AbortError`: the pending play was interrupted by a new load, which is what
 *   setting `srcObject` does (the call moving between the relay and the direct path
 *   hands each tile a new stream). Nothing is wrong: the element plays the new
 *   stream, or, if it was left paused, a new `play()` starts it.
 * - anything else (e.g. `NotSupportedError` for a stream without playable tracks):
 *   no tap would fix it, so no prompt.
 */

/** @typedef {'prompt'|'retry'|'ignore'} PlayFailureAction */

/**
 * @param {{name?: string} | null | undefined} error  the rejection of `play()`
 * @param {{current: boolean, paused: boolean}} element  whether the element still
 *   shows the stream this play was for, and whether it is paused now
 * @returns {PlayFailureAction}
 */
export function onPlayRejected(error, element) {
  const name = error?.name;
  if (name === 'NotAllowedError') return element.current ? 'prompt' : 'ignore';
  if (name === 'AbortError') return element.current && element.paused ? 'retry' : 'ignore';
  return 'ignore';
}
