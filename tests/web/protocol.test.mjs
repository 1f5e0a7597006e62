// The JS client against the Rust wire protocol: reads src/signaling/protocol.rs,
// takes the variants of ClientMsg (browser to server) and ServerMsg (server to
// browser) with the names serde gives them on the wire, and checks that the client
// handles every server message, can send every client message, and knows no message
// type the server does not. Each failure names the type.
// Run: node --test tests/web/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { CLIENT_MSG_TYPES, SERVER_MSG_TYPES } from '../../web/signaling.js';
import { SERVER_MSG_HANDLERS } from '../../web/handlers.js';

const root = new URL('../../', import.meta.url);
const read = (/** @type {string} */ path) => readFile(new URL(path, root), 'utf8');

/** Rust source without comments (string literals kept as they are). */
function stripComments(src) {
  let out = '';
  for (let i = 0; i < src.length; ) {
    if (src[i] === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
    } else if (src.startsWith('//', i)) {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? src.length : end + 2;
    } else {
      out += src[i++];
    }
  }
  return out;
}

/** Index just past the bracket that closes the one at `open`. */
function closing(src, open) {
  const pairs = { '{': '}', '(': ')', '[': ']' };
  const stack = [];
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"') {
      i++;
      while (i < src.length && src[i] !== '"') i += src[i] === '\\' ? 2 : 1;
    } else if (c in pairs) {
      stack.push(pairs[c]);
    } else if (c === stack[stack.length - 1]) {
      stack.pop();
      if (!stack.length) return i + 1;
    }
  }
  throw new Error(`unbalanced brackets from offset ${open}`);
}

/** The `key = "value"` pairs and bare words of the `#[serde(...)]` attributes in `attrs`. */
function serdeArgs(attrs) {
  /** @type {Record<string, string | true>} */
  const args = {};
  for (const a of attrs) {
    const m = /^#\[\s*serde\s*\(([\s\S]*)\)\s*\]$/.exec(a);
    if (!m) continue;
    for (const part of m[1].split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/)) {
      const kv = /^\s*([a-z_]+)\s*(?:=\s*"([^"]*)")?\s*(\(.*)?$/s.exec(part);
      if (!kv) continue;
      if (kv[3]) throw new Error(`serde attribute not understood by this test: ${part.trim()}`);
      args[kv[1]] = kv[2] ?? true;
    }
  }
  return args;
}

/**
 * A variant name as serde's `rename_all` writes it (serde's RenameRule for variants).
 * @param {string} name
 * @param {string | undefined} rule
 */
export function renameVariant(name, rule) {
  const snake = name.replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
  switch (rule) {
    case undefined: case 'PascalCase': return name;
    case 'lowercase': return name.toLowerCase();
    case 'UPPERCASE': return name.toUpperCase();
    case 'camelCase': return name[0].toLowerCase() + name.slice(1);
    case 'snake_case': return snake;
    case 'SCREAMING_SNAKE_CASE': return snake.toUpperCase();
    case 'kebab-case': return snake.replace(/_/g, '-');
    case 'SCREAMING-KEBAB-CASE': return snake.replace(/_/g, '-').toUpperCase();
    default: throw new Error(`unknown rename_all rule ${rule}`);
  }
}

/**
 * The enum `name` of Rust source `src`: its serde attributes and its variants, each
 * with the name it has on the wire and the serde attributes that decide whether it
 * is ever serialized or deserialized.
 * @param {string} src
 * @param {string} name
 */
export function serdeEnum(src, name) {
  const code = stripComments(src);
  const at = new RegExp(`\\benum\\s+${name}\\s*\\{`).exec(code);
  if (!at) throw new Error(`enum ${name} not found`);
  // The enum's own attributes: those between the previous item and `enum`.
  const before = code.slice(0, at.index);
  const prevEnd = Math.max(before.lastIndexOf('}'), before.lastIndexOf(';'));
  const enumAttrs = [...before.slice(prevEnd + 1).matchAll(/#\[/g)].map((m) => {
    const start = prevEnd + 1 + m.index;
    return code.slice(start, closing(code, start + 1));
  });
  const args = serdeArgs(enumAttrs);
  const rule = typeof args.rename_all === 'string' ? args.rename_all : undefined;
  const open = at.index + at[0].length - 1;
  const body = code.slice(open + 1, closing(code, open) - 1);
  const variants = [];
  /** @type {string[]} */
  let attrs = [];
  for (let i = 0; i < body.length; ) {
    const c = body[i];
    if (/[\s,]/.test(c)) {
      i++;
    } else if (body.startsWith('#[', i)) {
      const end = closing(body, i + 1);
      attrs.push(body.slice(i, end));
      i = end;
    } else {
      const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i));
      if (!id) throw new Error(`enum ${name}: cannot read a variant at "${body.slice(i, i + 30)}"`);
      i += id[0].length;
      while (/\s/.test(body[i] || '')) i++;
      if (body[i] === '{' || body[i] === '(') i = closing(body, i);
      if (body[i] === '=') while (i < body.length && body[i] !== ',') i++;
      const v = serdeArgs(attrs);
      variants.push({
        rust: id[0],
        wire: typeof v.rename === 'string' ? v.rename : renameVariant(id[0], rule),
        serialized: !v.skip && !v.skip_serializing,
        deserialized: !v.skip && !v.skip_deserializing,
        other: !!v.other,
      });
      attrs = [];
    }
  }
  return { tag: args.tag, variants };
}

/**
 * Differences between what Rust has and what JS has, as readable lines.
 * @param {string} what
 * @param {Iterable<string>} rust
 * @param {Iterable<string>} js
 * @param {string} where the JS side
 */
function mismatch(what, rust, js, where) {
  const r = new Set(rust);
  const j = new Set(js);
  return [
    ...[...r].filter((t) => !j.has(t)).map((t) => `${what} '${t}' of protocol.rs is missing from ${where}`),
    ...[...j].filter((t) => !r.has(t)).map((t) => `${where} has '${t}', which is no ${what} of protocol.rs`),
  ];
}

/** The `type: '...'` names of the JSDoc typedef `name` in `src`. */
function typedefTypes(src, name) {
  const m = new RegExp(`@typedef \\{([^@]*?)\\}\\s*${name}\\b`).exec(src);
  if (!m) throw new Error(`typedef ${name} not found`);
  return [...m[1].matchAll(/type:\s*'([^']+)'/g)].map((x) => x[1]);
}

const protocol = await read('src/signaling/protocol.rs');
const server = serdeEnum(protocol, 'ServerMsg');
const client = serdeEnum(protocol, 'ClientMsg');
/** What the server can send: serialized variants. */
const serverTypes = server.variants.filter((v) => v.serialized).map((v) => v.wire);
/** What the server accepts: deserialized variants (an `other` catch-all is no message). */
const clientTypes = client.variants.filter((v) => v.deserialized && !v.other).map((v) => v.wire);

test('the Rust enum reader follows serde: camelCase, renames, skips, comments', () => {
  const src = `
    /// Doc comment with { braces } and an enum Foo { inside }.
    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "camelCase")]
    pub enum Sample {
        /// One.
        PeerJoined { peer: PeerInfo },
        // Comment: Bogus,
        #[serde(rename = "bye-bye")]
        Leave,
        Tuple(u32, String),
        #[serde(skip_serializing)]
        Hidden { a: Vec<(u8, u8)> },
        /* Block: Gone */ Error { code: ErrorCode, message: String },
    }`;
  const e = serdeEnum(src, 'Sample');
  assert.equal(e.tag, 'type');
  assert.deepEqual(e.variants.map((v) => v.wire), ['peerJoined', 'bye-bye', 'tuple', 'hidden', 'error']);
  assert.deepEqual(e.variants.filter((v) => !v.serialized).map((v) => v.rust), ['Hidden']);
  assert.equal(renameVariant('PeerJoined', 'snake_case'), 'peer_joined');
  assert.equal(renameVariant('PeerJoined', 'SCREAMING-KEBAB-CASE'), 'PEER-JOINED');
});

test('protocol.rs: both message enums are tagged by "type" and have variants', () => {
  assert.equal(server.tag, 'type', 'ServerMsg must be #[serde(tag = "type")]: the client reads msg.type');
  assert.equal(client.tag, 'type', 'ClientMsg must be #[serde(tag = "type")]: the client writes msg.type');
  assert.ok(serverTypes.length >= 10, `ServerMsg variants read: ${serverTypes}`);
  assert.ok(clientTypes.length >= 8, `ClientMsg variants read: ${clientTypes}`);
  assert.ok(serverTypes.includes('peerJoined') && clientTypes.includes('join'), 'names as serde writes them');
});

test('every ServerMsg type is known to the client, and no other', () => {
  assert.deepEqual(mismatch('ServerMsg type', serverTypes, SERVER_MSG_TYPES, 'SERVER_MSG_TYPES in web/signaling.js'), []);
});

test('every ServerMsg type has a handler in the session, and no other', () => {
  assert.deepEqual(mismatch('ServerMsg type', serverTypes, Object.keys(SERVER_MSG_HANDLERS), 'SERVER_MSG_HANDLERS in web/handlers.js'), []);
  for (const [type, handler] of Object.entries(SERVER_MSG_HANDLERS)) assert.equal(typeof handler, 'function', type);
});

test('the ServerMsg typedef of web/signaling.js matches protocol.rs', async () => {
  const src = await read('web/signaling.js');
  assert.deepEqual(mismatch('ServerMsg type', serverTypes, typedefTypes(src, 'ServerMsg'), 'the ServerMsg typedef in web/signaling.js'), []);
});

test('every ClientMsg type is one the client can send, and no other', async () => {
  const src = await read('web/signaling.js');
  assert.deepEqual(mismatch('ClientMsg type', clientTypes, CLIENT_MSG_TYPES, 'CLIENT_MSG_TYPES in web/signaling.js'), []);
  assert.deepEqual(mismatch('ClientMsg type', clientTypes, typedefTypes(src, 'ClientMsg'), 'the ClientMsg typedef in web/signaling.js'), []);
});

test('the client sends every ClientMsg type somewhere, and only those', async () => {
  const dir = new URL('web/', root);
  /** @type {Map<string, string[]>} type -> files sending it */
  const sent = new Map();
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.js'))) {
    const src = await readFile(new URL(file, dir), 'utf8');
    for (const m of src.matchAll(/\.send\(\s*\{\s*type:\s*'([^']+)'/g)) {
      sent.set(m[1], [...(sent.get(m[1]) || []), file]);
    }
  }
  assert.ok(sent.size > 0, 'no sig.send({type: ...}) calls found in web/');
  assert.deepEqual(mismatch('ClientMsg type', clientTypes, sent.keys(), "the client's send({type}) calls in web/*.js"), []);
});
