// The comparison's arithmetic (web/measure.js) on made-up getStats() readings: figures
// are deltas inside the window (a freeze or loss before it does not count), in the
// right units (jitter in ms from seconds, bit rates from bytes), per stream; and the
// verdict names the better path, or a tie when the difference is within noise.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readCounters, windowFigures, verdict, serverFigures } from '../../web/measure.js';
import { compactReport } from '../../web/stats.js';

/**
 * A getStats() report of one connection after `s` seconds of a steady call: audio at
 * 50 packets/s, video at 100 packets/s and 30 frames/s, with the given totals.
 */
function report(s, o = {}) {
  const {
    rtt = 0.02, audioLost = 0, videoLost = 0, freezes = 0, frozenS = 0, jitter = 0.004,
    videoJitter = 0.012, width = 640, height = 480, remoteAudioLost = 0, responses = s,
  } = o;
  return [
    { id: 'T', type: 'transport', selectedCandidatePairId: 'CP' },
    { id: 'CP', type: 'candidate-pair', localCandidateId: 'L', remoteCandidateId: 'R', totalRoundTripTime: rtt * responses, responsesReceived: responses, currentRoundTripTime: rtt },
    { id: 'L', type: 'local-candidate', candidateType: 'host', address: '10.0.0.1', port: 5000, protocol: 'udp' },
    { id: 'R', type: 'remote-candidate', candidateType: 'host', address: '10.0.0.2', port: 6000, protocol: 'udp' },
    { id: 'IA', type: 'inbound-rtp', kind: 'audio', bytesReceived: 4000 * s, packetsReceived: 50 * s - audioLost, packetsLost: audioLost, jitter },
    {
      id: 'IV', type: 'inbound-rtp', kind: 'video', bytesReceived: 125000 * s, packetsReceived: 100 * s - videoLost, packetsLost: videoLost,
      jitter: videoJitter, framesDecoded: 30 * s, framesDropped: 0, freezeCount: freezes, totalFreezesDuration: frozenS, frameWidth: width, frameHeight: height,
    },
    { id: 'OA', type: 'outbound-rtp', kind: 'audio', bytesSent: 4000 * s, packetsSent: 50 * s },
    { id: 'OV', type: 'outbound-rtp', kind: 'video', bytesSent: 125000 * s, packetsSent: 100 * s },
    { id: 'RA', type: 'remote-inbound-rtp', kind: 'audio', localId: 'OA', packetsLost: remoteAudioLost, jitter, totalRoundTripTime: o.rtcpRtt === undefined ? 0 : o.rtcpRtt * s, roundTripTimeMeasurements: o.rtcpRtt === undefined ? 0 : s },
  ];
}

/** Readings at seconds `from`..`to`, each with the options `at(s)` gives. */
function readings(from, to, at = () => ({})) {
  const out = [];
  for (let s = from; s <= to; s++) out.push(readCounters(report(s, at(s)), s * 1000));
  return out;
}

test('figures are in ms, %, kbit/s and frames per second', () => {
  const f = windowFigures(readings(10, 20));
  assert.equal(f.seconds, 10);
  assert.equal(f.samples, 10);
  assert.equal(f.rttMs, 20, 'round trip from the candidate pair, s to ms');
  assert.equal(f.audioJitterMs, 4, 'getStats jitter is in seconds');
  assert.equal(f.jitterMs, 12);
  assert.equal(f.inKbps, 1032, '(4,000 + 125,000) bytes/s is 1,032 kbit/s');
  assert.equal(f.outKbps, 1032);
  assert.equal(f.fps, 30);
  assert.equal(f.width, 640);
  assert.equal(f.lossPct, 0);
  assert.equal(f.streams.audioIn.kbps, 32);
  assert.equal(f.streams.videoIn.kbps, 1000);
  assert.equal(f.remote, 'host 10.0.0.2:6000');
});

test('a freeze before the window is not counted in it; one inside is', () => {
  // Frozen 3.6 s at second 5: the counters say so from then on.
  const before = (s) => (s >= 5 ? { freezes: 1, frozenS: 3.592 } : {});
  const f = windowFigures(readings(10, 20, before));
  assert.equal(f.freezes, 0);
  assert.equal(f.frozenMs, 0);
  const inside = (s) => (s >= 15 ? { freezes: 1, frozenS: 0.8 } : {});
  const g = windowFigures(readings(10, 20, inside));
  assert.equal(g.freezes, 1);
  assert.equal(g.frozenMs, 800);
});

test('loss is counted inside the window, per stream, and audio both ways', () => {
  // 300 audio packets lost before the window; then 3 % of audio each way.
  const at = (s) => ({ audioLost: 300 + (s - 10) * 1.5, remoteAudioLost: (s - 10) * 1.5 });
  const f = windowFigures(readings(10, 20, at));
  assert.equal(f.streams.audioIn.lost, 15);
  assert.equal(f.streams.audioIn.lossPct, 3);
  assert.equal(f.audioLossPct, 3, '15 + 15 lost of 500 + 500');
  assert.equal(f.lossInPct, 1, 'audio 15 of 500, video 0 of 1,000');
  assert.equal(f.lossPct, 1);
});

test('the round trip is the mean of the window, not of the call', () => {
  // 100 ms round trips for the first 10 s, then 20 ms.
  const rs = [];
  for (let s = 10; s <= 20; s++) {
    const r = report(s);
    const pair = r.find((x) => x.id === 'CP');
    pair.totalRoundTripTime = 0.1 * 10 + 0.02 * (s - 10);
    rs.push(readCounters(r, s * 1000));
  }
  assert.equal(windowFigures(rs).rttMs, 20);
});

test('the round trip pools ICE and RTCP measurements', () => {
  // One STUN response a second at 20 ms, one RTCP measurement a second at 40 ms.
  assert.equal(windowFigures(readings(10, 20, () => ({ rtcpRtt: 0.04 }))).rttMs, 30);
  assert.equal(windowFigures(readings(10, 20, () => ({ rtcpRtt: 0.04 }))).rttSamples, 20);
});

test('a stream that appears during the window counts from zero', () => {
  const rs = readings(10, 20);
  const late = report(20);
  late.push({ id: 'IV2', type: 'inbound-rtp', kind: 'video', bytesReceived: 50000, packetsReceived: 40, packetsLost: 0, framesDecoded: 10, freezeCount: 0 });
  rs[rs.length - 1] = readCounters(late, 20000);
  assert.equal(windowFigures(rs).streams.videoIn.packets, 1040);
  assert.equal(windowFigures(rs.slice(0, 1)), null, 'one reading is no window');
});

test('the verdict names the better path and on what', () => {
  const relay = windowFigures(readings(10, 20, (s) => ({ rtt: 0.04, audioLost: (s - 10) * 1.5, videoLost: (s - 10) * 3, jitter: 0.0035 })));
  const direct = windowFigures(readings(30, 40, () => ({ rtt: 0.01, jitter: 0.0005 })));
  const v = verdict({ relay, direct });
  assert.equal(v.better, 'direct');
  assert.match(v.text, /^Direct: the relayed path lost 3 % of packets/);
  assert.match(v.text, /30 ms lower round trip/);
  assert.match(v.text, /same resolution, same frame rate/);
  const swapped = verdict({ relay: direct, direct: relay });
  assert.equal(swapped.better, 'relay');
  assert.match(swapped.text, /^Relay: the direct path lost 3 %/);
});

test('a difference within noise is a tie', () => {
  const relay = windowFigures(readings(10, 20, () => ({ rtt: 0.012, jitter: 0.002 })));
  const direct = windowFigures(readings(30, 40, () => ({ rtt: 0.014, jitter: 0.003 })));
  const v = verdict({ relay, direct });
  assert.equal(v.better, 'tie');
  assert.match(v.text, /^No clear difference/);
  assert.match(v.text, /no loss on either/);
  // Half a point of loss is noise too.
  const lossy = windowFigures(readings(10, 20, (s) => ({ rtt: 0.012, audioLost: (s - 10) * 0.25, videoLost: (s - 10) * 0.5 })));
  assert.equal(verdict({ relay: lossy, direct }).better, 'tie');
});

test('a path that did not work loses', () => {
  const relay = windowFigures(readings(10, 20));
  const v = verdict({ relay, direct: { error: 'ICE failed' } });
  assert.equal(v.better, 'relay');
  assert.match(v.text, /direct path did not work \(ICE failed\)/);
  assert.equal(verdict({}).better, null);
});

test("the server's figures are per-second means in ms, % and kbit/s", () => {
  const f = serverFigures([
    { rttMs: 40, upBps: 1e6, downBps: 2e6, upLoss: 0.02, downLoss: 0.04, upJitterMs: 3, upAudioJitterMs: 2 },
    { rttMs: 42, upBps: 1.2e6, downBps: 2e6, upLoss: 0.04, downLoss: 0.02, upJitterMs: 5, upAudioJitterMs: 4 },
  ]);
  assert.deepEqual(
    [f.rttMs, f.upKbps, f.downKbps, f.upLossPct, f.downLossPct, f.upJitterMs, f.upAudioJitterMs],
    [41, 1100, 2000, 3, 3, 4, 3],
  );
});

test('a report too large for the server loses its samples, not its figures', () => {
  const big = { verdict: { better: 'direct' }, paths: { relay: { summary: { rttMs: 1 }, samples: new Array(2000).fill({ t: 1, rttMs: 1 }), server: { summary: {}, samples: [1, 2] } } } };
  const c = compactReport(big, 4096);
  assert.equal(c.samplesOmitted, true);
  assert.equal(c.paths.relay.samples, undefined);
  assert.deepEqual(c.paths.relay.summary, { rttMs: 1 });
  assert.equal(c.verdict.better, 'direct');
  const small = { paths: {} };
  assert.equal(compactReport(small, 4096), small);
});

test("Firefox's report (no transport stats) still names the pair in use and its round trip", () => {
  const firefox = [
    { id: 'p1', type: 'candidate-pair', selected: false, localCandidateId: 'l2', remoteCandidateId: 'r1', totalRoundTripTime: 9, responsesReceived: 3 },
    { id: 'p2', type: 'candidate-pair', selected: true, localCandidateId: 'l1', remoteCandidateId: 'r1', totalRoundTripTime: 0.5, responsesReceived: 100, currentRoundTripTime: 0.004 },
    { id: 'l1', type: 'local-candidate', candidateType: 'host', address: '10.201.1.2', port: 40777, protocol: 'udp' },
    { id: 'l2', type: 'local-candidate', candidateType: 'host', address: '10.201.1.2', port: 40778, protocol: 'tcp' },
    { id: 'r1', type: 'remote-candidate', candidateType: 'host', address: '10.201.0.1', port: 8443, protocol: 'udp' },
  ];
  const r = readCounters(firefox, 1000);
  assert.deepEqual(r.pair, {
    rttTotalS: 0.5, responses: 100, currentRttMs: 4,
    local: 'host 10.201.1.2:40777', remote: 'host 10.201.0.1:8443', protocol: 'udp',
  });
});
