// Unit tests of the call's path policy (web/policy.js): the relay, direct and auto
// modes, their transitions, and the rules that hold in every mode (viewers stay
// relayed, three or more participants stay relayed). The policy is pure, so the
// scenarios below drive it with facts and a simulated clock, as session.js would.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as policy from '../../web/policy.js';

/**
 * Facts of a participant (id 2) alone with participant 1, nothing connected yet.
 * @param {Partial<policy.Facts>} [over]
 * @returns {policy.Facts}
 */
function facts(over = {}) {
  const f = {
    mode: 'auto', role: 'participant', id: 2, peerCount: 1, onlyPeer: 1, relayChosen: false, hasRelay: false,
    path: null, pathReason: '', direct: null, retryPending: false, forced: null, peerUsing: undefined, viewers: 0,
    ...over,
  };
  if (over.peerCount !== undefined && over.onlyPeer === undefined) f.onlyPeer = over.peerCount === 1 ? 1 : null;
  return /** @type {policy.Facts} */ (f);
}

/** A direct link to participant 1 in `state`. */
const link = (state, initiator = true) => ({ peerId: 1, state, initiator });

test('the requested mode: known modes kept, others auto, viewers relay', () => {
  assert.equal(policy.requestedMode('relay', 'participant'), 'relay');
  assert.equal(policy.requestedMode('direct', 'participant'), 'direct');
  assert.equal(policy.requestedMode('auto', 'participant'), 'auto');
  assert.equal(policy.requestedMode(undefined, 'participant'), 'auto');
  assert.equal(policy.requestedMode('p2p', 'participant'), 'auto');
  assert.equal(policy.requestedMode('direct', 'viewer'), 'relay');
  assert.equal(policy.requestedMode('auto', 'viewer'), 'relay');
});

test('the newer participant (higher id) offers the direct connection', () => {
  assert.equal(policy.initiates(2, 1), true);
  assert.equal(policy.initiates(1, 2), false);
  assert.deepEqual(policy.directPlan(facts({ id: 2 })), { do: 'start', peerId: 1 });
  assert.deepEqual(policy.directPlan(facts({ id: 0, onlyPeer: 1 })), { do: 'awaitOffer' });
});

test('relay mode: relay at once, never direct', () => {
  const f = facts({ mode: 'relay' });
  assert.deepEqual(policy.onJoined(f), { startRelay: true, waiting: false });
  assert.deepEqual(policy.directPlan(f), { do: 'stop', reason: 'direct path not used' });
  assert.deepEqual(policy.onDirectOffer(f, 1), { refuse: policy.REFUSE_REASON });
  // Nothing to tell the other side about paths: it never goes direct with us.
  assert.equal(policy.tellPeerPath(facts({ mode: 'relay', path: 'relay' })), false);
  assert.equal(policy.onJoined(facts({ mode: 'relay', peerCount: 0 })).waiting, false);
});

test('direct mode: no relay, waits for the other participant, then goes direct', () => {
  const alone = facts({ mode: 'direct', peerCount: 0 });
  assert.deepEqual(policy.onJoined(alone), { startRelay: false, waiting: true });
  assert.equal(policy.directPlan(alone).do, 'stop');
  const two = facts({ mode: 'direct' });
  assert.deepEqual(policy.onJoined(two), { startRelay: false, waiting: false });
  assert.deepEqual(policy.directPlan(two), { do: 'start', peerId: 1 });
  assert.deepEqual(policy.directPlan(facts({ mode: 'direct', direct: link('connecting') })), { do: 'keep' });
  assert.equal(policy.peerPathAtDirectStart(two), 'direct');
  assert.deepEqual(policy.onDirectDelivering(facts({ mode: 'direct', direct: link('delivering') })), {
    path: 'direct', reason: 'direct connection established',
  });
  // The other participant left a direct call without relay: waiting again.
  assert.equal(policy.waitingAfterLeave(facts({ mode: 'direct', peerCount: 0 })), true);
  assert.equal(policy.waitingAfterLeave(facts({ mode: 'direct', peerCount: 0, hasRelay: true })), false);
  assert.equal(policy.waitingAfterLeave(facts({ mode: 'auto', peerCount: 0 })), false);
});

test('direct mode: a failure is reported with canRelay, and is not retried', () => {
  const trouble = policy.directLinkTrouble('failed', 'no direct media within 10 s');
  assert.deepEqual(trouble, { close: 'no direct media within 10 s', failure: 'direct connection failed: no direct media within 10 s' });
  const f = facts({ mode: 'direct' });
  assert.deepEqual(policy.afterDirectFailure(f, trouble.failure), { fail: true, reason: trouble.failure, canRelay: true });
  // A direct call the user already moved to the relay carries on there, no retry.
  const moved = facts({ mode: 'direct', hasRelay: true, relayChosen: true, path: 'relay', pathReason: 'you switched' });
  assert.deepEqual(policy.afterDirectFailure(moved, 'direct path broke: x'), {
    fail: false, toRelay: true, reason: 'direct path broke: x', retryDirect: false,
  });
});

test('direct mode: once the relay is chosen, relay on join and no direct path', () => {
  const f = facts({ mode: 'direct', relayChosen: true });
  assert.equal(policy.onJoined(f).startRelay, true);
  assert.equal(policy.onJoined(facts({ mode: 'direct', relayChosen: true, peerCount: 0 })).waiting, false);
  assert.deepEqual(policy.directPlan(f), { do: 'stop', reason: 'direct path not used' });
  assert.deepEqual(policy.onDirectOffer(f, 1), { refuse: policy.REFUSE_REASON });
});

test('direct mode: the other side moving to the relay brings us along unless direct delivers', () => {
  const failing = facts({ mode: 'direct', direct: link('connecting') });
  assert.deepEqual(policy.onPeerUsing(failing, 'relay'), {
    sendOn: 'relay', stopDirect: false, follow: 'the other participant switched the call to relay',
  });
  assert.equal(policy.onPeerUsing(facts({ mode: 'direct', direct: link('delivering'), path: 'direct' }), 'relay').follow, null);
  assert.equal(policy.onPeerUsing(facts({ mode: 'direct', path: 'relay' }), 'relay').follow, null);
  // In auto the relay is there anyway: nothing to follow.
  assert.equal(policy.onPeerUsing(facts({ mode: 'auto', direct: link('connecting') }), 'relay').follow, null);
});

/**
 * The session's part of an automatic call, reduced to the facts, its clock and the
 * scheduled retry: it does what the policy says, as session.js does.
 */
function autoCall() {
  const call = {
    now: 0,
    f: facts({ mode: 'auto' }),
    failures: 0,
    /** @type {number | null} when the scheduled retry of direct fires */
    retryAt: null,
    /** @type {{at: number, path: string, reason: string}[]} */
    log: [],
    /** @param {'relay'|'direct'} path @param {string} reason */
    switchPath(path, reason) {
      if (call.f.path !== path) call.log.push({ at: call.now, path, reason });
      call.f = { ...call.f, path, pathReason: reason };
    },
    evaluate() {
      const plan = policy.directPlan(call.f);
      if (plan.do === 'start') call.f = { ...call.f, direct: link('connecting') };
      return plan;
    },
    joined() {
      const next = policy.onJoined(call.f);
      if (next.startRelay) call.f = { ...call.f, hasRelay: true };
      return call.evaluate();
    },
    relayConnected() {
      const next = policy.onRelayState(call.f, 'connected');
      if (next.do === 'receive') call.switchPath('relay', next.reason);
    },
    delivering() {
      call.failures = 0;
      call.f = { ...call.f, direct: link('delivering') };
      const take = policy.onDirectDelivering(call.f);
      if (take) call.switchPath(take.path, take.reason);
    },
    /** @param {'failed'|'broken'} state @param {string} why */
    directTrouble(state, why) {
      const t = policy.directLinkTrouble(state, why);
      call.f = { ...call.f, direct: null, peerUsing: 'relay' };
      if (policy.relayAfterDirectClosed(call.f)) call.switchPath('relay', t.close);
      const next = policy.afterDirectFailure(call.f, t.failure);
      assert.equal(next.fail, false, 'an automatic call never fails for want of direct');
      if (!next.fail && next.toRelay) call.switchPath('relay', next.reason);
      if (!next.fail && next.retryDirect) {
        const delay = policy.directRetryDelay(call.failures);
        if (delay !== null) {
          call.failures += 1;
          call.retryAt = call.now + delay;
          call.f = { ...call.f, retryPending: true };
        }
      }
    },
    /** Moves the clock; a due retry fires and looks at the direct path again. */
    advance(ms) {
      call.now += ms;
      if (call.retryAt !== null && call.now >= call.retryAt) {
        call.retryAt = null;
        call.f = { ...call.f, retryPending: false };
        return call.evaluate();
      }
      return null;
    },
  };
  return call;
}

test('auto mode: starts relayed, direct takes over once it delivers', () => {
  const call = autoCall();
  assert.deepEqual(call.joined(), { do: 'start', peerId: 1 });
  assert.equal(call.f.hasRelay, true, 'an automatic call opens the relay at once');
  assert.equal(policy.peerPathAtDirectStart(call.f), 'relay', 'the other side receives relayed until it says otherwise');
  call.relayConnected();
  assert.equal(call.f.path, 'relay');
  // Connected but not yet delivering: still relayed.
  call.f = { ...call.f, direct: link('connected') };
  assert.equal(policy.settledPath(call.f), 'relay');
  call.delivering();
  assert.deepEqual(call.log.map((e) => [e.path, e.reason]), [
    ['relay', 'connected to the server'],
    ['direct', 'the direct path delivers media'],
  ]);
  // The relay goes quiet after the grace period, unless viewers watch through it.
  const quiet = { ...call.f, peerUsing: /** @type {const} */ ('direct') };
  assert.equal(policy.shouldQuietRelay(quiet), true);
  assert.equal(policy.relayQuietNow(quiet), true);
  assert.equal(policy.relayQuietNow({ ...quiet, viewers: 2 }), false);
  assert.equal(policy.relayQuietNow({ ...quiet, direct: link('connected') }), false);
  assert.equal(policy.relaySendsAtStart(quiet), false, 'a new relay link sends nothing the other side does not need');
  assert.equal(policy.relaySendsAtStart({ ...quiet, peerUsing: 'relay' }), true);
  assert.equal(policy.RELAY_GRACE_MS, 1500);
});

test('auto mode: falls back to relay at once when direct breaks, retries later with backoff', () => {
  const call = autoCall();
  call.joined();
  call.relayConnected();
  call.delivering();
  call.directTrouble('broken', 'ICE disconnected');
  assert.deepEqual(call.log.at(-1), { at: 0, path: 'relay', reason: 'ICE disconnected' }, 'back on the relay at once');
  assert.equal(call.f.pathReason, 'direct path broke: ICE disconnected');
  assert.deepEqual(policy.DIRECT_RETRY_MS, [15000, 30000, 60000]);

  // Each failure in a row waits longer: 15 s, 30 s, 60 s, then direct is left alone.
  for (const wait of policy.DIRECT_RETRY_MS) {
    assert.equal(call.retryAt, call.now + wait);
    assert.deepEqual(call.evaluate(), { do: 'retryPending' }, 'nothing while the retry is pending');
    assert.equal(call.advance(wait - 1), null, `not before ${wait} ms`);
    assert.deepEqual(call.advance(1), { do: 'start', peerId: 1 }, `direct tried again after ${wait} ms`);
    call.directTrouble('failed', 'no direct media within 10 s');
    assert.equal(call.f.path, 'relay');
  }
  assert.equal(call.retryAt, null, 'no retry after the last delay');
  assert.equal(policy.directRetryDelay(policy.DIRECT_RETRY_MS.length), null);

  // A direct path that delivers again starts the backoff over.
  call.f = { ...call.f, retryPending: false };
  call.evaluate();
  call.delivering();
  call.directTrouble('broken', 'stalled');
  assert.equal(call.retryAt, call.now + policy.DIRECT_RETRY_MS[0]);
});

test('auto mode: a failure already reported is not switched to again', () => {
  const f = facts({ hasRelay: true, path: 'relay', pathReason: 'direct connection failed: x' });
  assert.equal(/** @type {any} */ (policy.afterDirectFailure(f, 'direct connection failed: x')).toRelay, false);
  assert.equal(/** @type {any} */ (policy.afterDirectFailure(f, 'direct path broke: y')).toRelay, true);
});

test('the other side closing the direct path: broke if it delivered, else failed', () => {
  assert.deepEqual(policy.peerClosedDirect('delivering', 'left'), {
    close: 'the other side closed the direct path: left', failure: 'direct path broke: left',
  });
  assert.equal(policy.peerClosedDirect('connecting', 'left').failure, 'direct connection failed: left');
  assert.deepEqual(policy.directLinkTrouble('broken'), { close: 'direct path broke', failure: 'direct path broke: unknown' });
});

test('a stalled direct path falls back only while it is the one received on', () => {
  const receiving = facts({ path: 'direct', direct: link('delivering') });
  assert.deepEqual(policy.onDirectStall(receiving, true, 1500), {
    close: 'no media for 1500 ms', failure: 'direct path broke: no media for 1500 ms',
  });
  assert.equal(policy.onDirectStall(receiving, false, 1500), null, 'an old link');
  assert.equal(policy.onDirectStall({ ...receiving, path: 'relay' }, true, 1500), null, 'not received on');
  assert.equal(policy.onDirectStall({ ...receiving, forced: 'direct' }, true, 1500), null, 'pinned by a comparison run');
});

test('direct offers: answered on a new link unless ours answers that peer already', () => {
  assert.deepEqual(policy.onDirectOffer(facts({ id: 0 }), 1), { refuse: null, newLink: true });
  assert.deepEqual(policy.onDirectOffer(facts({ id: 0, direct: link('connecting', false) }), 1), { refuse: null, newLink: false });
  // Both offered at once: the offering link gives way to an answering one.
  assert.deepEqual(policy.onDirectOffer(facts({ direct: link('connecting', true) }), 1), { refuse: null, newLink: true });
});

test('viewers never go direct, whatever the room', () => {
  for (const mode of ['auto', 'direct']) {
    const f = facts({ role: 'viewer', mode, id: 9 });
    assert.equal(policy.onJoined(f).startRelay, true, `${mode}: a viewer receives from the server`);
    assert.equal(policy.directPlan(f).do, 'stop', `${mode}: a viewer starts no direct connection`);
    assert.equal(policy.onDirectOffer(f, 1).refuse, policy.REFUSE_REASON, `${mode}: a viewer answers no direct offer`);
  }
});

test('more than two participants: no direct, the call moves to the relay', () => {
  for (const mode of ['auto', 'direct']) {
    const f = facts({ mode, peerCount: 2, hasRelay: true, path: 'direct', direct: link('delivering') });
    assert.deepEqual(policy.directPlan(f), { do: 'stop', reason: policy.GROUP_REASON }, mode);
    assert.equal(policy.onDirectOffer(f, 1).refuse, policy.REFUSE_REASON, mode);
    assert.equal(policy.tellPeerPath(f), false, `${mode}: no one to tell`);
    // Closing the direct link moved the call already; otherwise the group rule does.
    assert.equal(policy.groupNeedsRelay({ ...f, direct: null }), true);
    assert.equal(policy.groupNeedsRelay({ ...f, direct: null, path: 'relay' }), false);
    assert.equal(policy.groupNeedsRelay({ ...f, direct: null, hasRelay: false }), false);
  }
  // Back to two: direct again.
  assert.deepEqual(policy.directPlan(facts({ hasRelay: true, path: 'relay' })), { do: 'start', peerId: 1 });
});

test('a comparison run pins a path and hands it back', () => {
  const delivering = facts({ hasRelay: true, path: 'relay', direct: link('delivering') });
  assert.equal(policy.onDirectDelivering({ ...delivering, forced: 'relay' }), null, 'pinned to relay: stay there');
  assert.deepEqual(policy.onForced(delivering, 'direct'), { do: 'receive' });
  assert.deepEqual(policy.onForced(facts({ hasRelay: true }), 'direct'), { do: 'start', peerId: 1 });
  assert.deepEqual(policy.onForced(facts({ id: 0, hasRelay: true }), 'direct'), { do: 'wait' });
  assert.deepEqual(policy.onForced(delivering, 'relay'), { do: 'receive' });
  assert.equal(policy.onPeerUsing({ ...delivering, forced: 'relay' }, 'relay').stopDirect, true);
  assert.equal(policy.settledPath(delivering), 'direct');
  assert.equal(policy.settledPath(facts({ hasRelay: true })), 'relay');
  assert.equal(policy.settledPath(facts()), null);
  assert.equal(policy.reconsiderDirectAfterRun(facts()), true);
  assert.equal(policy.reconsiderDirectAfterRun(facts({ mode: 'direct' })), false);
  assert.equal(policy.reconsiderDirectAfterRun(delivering), false);
});

test('the relay link: an interruption restarts ICE; a failure matters only while receiving on it', () => {
  assert.deepEqual(policy.onRelayState(facts(), 'connected'), { do: 'receive', reason: 'connected to the server' });
  assert.deepEqual(policy.onRelayState(facts({ path: 'direct' }), 'connected'), { do: 'announce' });
  assert.deepEqual(policy.onRelayState(facts({ path: 'relay' }), 'broken'), {
    do: 'restart', reason: 'network changed', ms: policy.RESTART_ICE_MS, lost: 'media path to the server lost', quiet: false,
  });
  // Receiving directly, the relay (the fallback) is mended without a word.
  assert.deepEqual(policy.onRelayState(facts({ path: 'direct' }), 'broken'), {
    do: 'restart', reason: 'network changed', ms: policy.RESTART_ICE_MS, lost: 'media path to the server lost', quiet: true,
  });
  assert.deepEqual(policy.onRelayState(facts({ path: 'relay' }), 'failed', 'ICE failed'), { do: 'reconnect', reason: 'ICE failed' });
  assert.deepEqual(policy.onRelayState(facts({ path: 'relay' }), 'failed'), { do: 'reconnect', reason: 'media connection to the server failed' });
  assert.deepEqual(policy.onRelayState(facts({ path: 'direct' }), 'failed'), { do: 'ignore' });
  assert.deepEqual(policy.onRelayState(facts({ path: 'relay' }), 'delivering'), { do: 'ignore' });
});

test('server errors and reconnection backoff', () => {
  for (const code of ['notHost', 'heldByHost']) assert.equal(policy.onServerError(facts(), code), 'ignore', code);
  for (const code of ['roomFull', 'badName', 'forbidden', 'removed', 'roomLocked']) assert.equal(policy.onServerError(facts(), code), 'fail', code);
  assert.equal(policy.onServerError(facts({ path: 'relay' }), 'mediaFailed'), 'reconnect');
  assert.equal(policy.onServerError(facts({ path: 'direct' }), 'mediaFailed'), 'dropRelay');
  assert.equal(policy.onServerError(facts(), 'badSdp'), 'ignore');
  assert.deepEqual([1, 2, 3, 4, 5].map(policy.reconnectDelay), [250, 500, 1000, 2000, 2000]);
  assert.equal(policy.reconnectDelay(policy.MAX_RETRIES + 1), null);
});

test('a page is back soon after the server restarts, and keeps trying for minutes', () => {
  // The server is down for `downMs` from the moment the page lost it; the page's next
  // attempt after that is when it gets back in.
  const backAfter = (/** @type {number} */ downMs) => {
    let t = 0;
    for (let attempt = 1; ; attempt++) {
      const delay = policy.reconnectDelay(attempt);
      if (delay === null) return null;
      t += delay;
      if (t >= downMs) return t;
    }
  };
  // kill -9 and restarted at once, systemd's RestartSec=2, a slow start, a reboot.
  for (const down of [300, 2500, 6000, 60000]) {
    const back = backAfter(down);
    assert.ok(back !== null, `still trying after ${down} ms down`);
    assert.ok(back - down <= policy.RECONNECT_MAX_MS, `back ${back - down} ms after the server is (down ${down} ms)`);
  }
  assert.ok(backAfter(300) <= 750, 'an instant restart costs under a second');
  // It gives up eventually (the page then says so and offers to rejoin).
  assert.equal(backAfter(10 * 60 * 1000), null);
});

test('the policy module uses no timers, clock or browser objects', async () => {
  const { readFile } = await import('node:fs/promises');
  const src = await readFile(new URL('../../web/policy.js', import.meta.url), 'utf8');
  const code = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const word of ['setTimeout', 'setInterval', 'Date.now', 'performance', 'document', 'window', 'RTCPeerConnection', 'import ']) {
    assert.ok(!code.includes(word), `web/policy.js uses ${word}`);
  }
});

test('a lost signaling connection is resumed within the window, then the call is rebuilt', () => {
  assert.equal(policy.resumeDelay(1, 0), 250);
  assert.equal(policy.resumeDelay(2, 300), 500);
  assert.equal(policy.resumeDelay(10, 5000), policy.RECONNECT_MAX_MS, 'capped like reconnecting');
  assert.equal(policy.resumeDelay(3, policy.RESUME_WINDOW_MS - 100), null, 'no attempt past the window');
  assert.ok(policy.RESUME_WINDOW_MS < 30000, 'the last attempt comes within the server\'s default grace of 30 s');
  assert.equal(policy.onServerError(facts(), 'resumeRefused'), 'reconnect');
});

test('a relay connection gone silent restarts ICE, unless this side receives directly', () => {
  assert.deepEqual(policy.onRelaySilent(facts({ path: 'relay' })), {
    do: 'restart', reason: 'network changed', ms: policy.RESTART_ICE_MS, lost: 'media path to the server lost', quiet: false,
  });
  assert.deepEqual(policy.onRelaySilent(facts({ path: 'direct' })), { do: 'ignore' }, 'a quieted relay carries nothing on purpose');
});
