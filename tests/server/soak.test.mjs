// A bounded soak of `pensieve serve` on loopback: normal, streaming, disconnecting, slow,
// idle and hostile clients at once against stories260K for SOAK_SECONDS (default 30 when
// run by hand; scripts/test.sh runs 600). Passes when the server never crashes, no
// response is an unexpected 5xx, every well-formed request succeeds (or, rarely, meets a
// closing connection and is retried, as real clients do), and its resident
// memory at the end is within 20% of where it was after the warm-up (both measured with
// the load paused, so in-flight bodies do not count).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import zlib from 'node:zlib';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

import { startServer } from '../lib/pensieve_server.mjs';
import { connect, exchange, postHead, trickle, writeAll } from '../lib/raw_http.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve');
const SHARED = process.env.PENSIEVE_SHARED || path.resolve(root, '../shared');
const MODEL = path.join(SHARED, 'models/stories260K.gguf');
const SECONDS = Number(process.env.SOAK_SECONDS || 30);
const WARMUP_SECONDS = Math.min(60, SECONDS / 3);
const MB = 1 << 20;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));
const PROMPTS = ['Once upon a time', 'The little dog', 'Lily and Tom went to the park', 'A big red ball', 'One day, a cat'];

// Counts by client kind and outcome; failures keep a few examples.
class Tally {
  constructor() { this.counts = {}; this.failures = []; }
  add(kind, outcome, ok, detail = '') {
    const key = `${kind} ${outcome}`;
    this.counts[key] = (this.counts[key] || 0) + 1;
    if (!ok && this.failures.length < 20) this.failures.push(`${key}: ${String(detail).slice(0, 300)}`);
  }
  total() { return Object.values(this.counts).reduce((a, b) => a + b, 0); }
}

function chatBody(stream) {
  return JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content: pick(PROMPTS) }],
    max_tokens: randInt(1, 48), temperature: Math.random(), stream });
}

// Stalls of this process's event loop. The server's clocks keep running while the client
// stands still: a client stalled past the head timeout (2 s here) has its new connection
// closed before it wrote a byte, and one stalled past the idle timeout plus its grace
// reuses a socket the server has closed ("other side closed"). Both are the server doing
// its job. A CI run saw 2 such failures in 58882 requests along with 7 hostile requests
// closed unanswered, all explained by a stall of seconds on a shared 2-core host.
class Stalls {
  constructor(thresholdMs, tickMs = 100) {
    this.windows = [];
    this.longestMs = 0;
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      const lag = now - last - tickMs;
      this.longestMs = Math.max(this.longestMs, lag);
      if (lag > thresholdMs) this.windows.push([last, now]);
      last = now;
    }, tickMs);
  }
  // Whether a stall overlapped [from, to].
  during(from, to) { return this.windows.some(([a, b]) => b >= from && a <= to); }
  stop() { clearInterval(this.timer); }
}

// Failures that a client stall explains: the connection closed under us (fetch) or
// closed without an answer (raw). A request counts when a stall fell in it or in the
// 10 s before it (an idle kept-alive socket it reused).
const LOOKBACK_MS = 10000;
const closedUnderUs = (e) => /other side closed|ECONNRESET|EPIPE|socket hang up/i.test(
  `${e?.message} ${e?.cause?.code} ${e?.cause?.message}`);
// A closed connection no stall explains. HTTP/1.1 has a race no server can remove: a
// client may send on a kept-alive connection as the server closes it, and clients retry
// (RFC 9112, 9.3.1). A CI run saw 1 in 68076 requests with no stall within 10 s and the
// server idle timeout 10 s away; the socket's counters below tell a reused connection
// (bytes read before this request) from a new one (none) the next time.
const closedWithoutStall = [];
const describeClose = (e, t0) => {
  const k = e?.cause?.socket || {};
  return `${e?.cause?.message} after ${Date.now() - t0} ms; local port ${k.localPort}, ` +
    `bytes written ${k.bytesWritten}, read ${k.bytesRead}`;
};

// Every client operation ends within a deadline, whatever the library under it does:
// fetch's own timeout covers the body too, but node's undici has been seen to leave
// `response.text()` pending under concurrency (nodejs/undici#4089). A CI run's soak hung
// past its timeout (then past CI's 90 minutes, as the hung test kept the server running),
// most likely so: the next run caught a fetch still pending 75 s after its abort while
// the server had no request left. A stuck operation is reported with what it was; whether the
// server lost the request is judged on the server's side (no request still active once
// the load stops).
class Stuck extends Error {}
function bounded(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Stuck(`${what} still pending after ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
// fetch's timeout is 60 s; a stuck fetch is one still pending 15 s after that.
const FETCH_DEADLINE_MS = 75000;
const HOSTILE_DEADLINE_MS = 45000;

// ----------------------------------------------------------------- client kinds

async function normal(url, tally) {
  const kind = pick(['chat', 'completion', 'messages', 'tokenize']);
  const [route, body] = {
    chat: ['/v1/chat/completions', chatBody(false)],
    completion: ['/v1/completions', JSON.stringify({ model: 'x', prompt: pick(PROMPTS), max_tokens: randInt(1, 32) })],
    messages: ['/v1/messages', JSON.stringify({ model: 'x', max_tokens: randInt(1, 32),
      messages: [{ role: 'user', content: pick(PROMPTS) }] })],
    tokenize: ['/tokenize', JSON.stringify({ content: pick(PROMPTS).repeat(randInt(1, 200)) })],
  }[kind];
  const r = await fetch(url + route, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
    signal: AbortSignal.timeout(60000) });
  const text = await r.text();
  const j = JSON.parse(text);
  const ok = r.status === 200 && (j.choices || j.content || j.tokens) !== undefined;
  tally.add('normal', r.status, ok, text);
}

async function streaming(url, tally) {
  const anthropic = Math.random() < 0.3;
  const body = anthropic
    ? JSON.stringify({ model: 'x', max_tokens: randInt(1, 48), stream: true, messages: [{ role: 'user', content: pick(PROMPTS) }] })
    : chatBody(true);
  const r = await fetch(url + (anthropic ? '/v1/messages' : '/v1/chat/completions'), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body, signal: AbortSignal.timeout(60000) });
  const text = await r.text();
  const ended = anthropic ? text.includes('event: message_stop') : text.includes('data: [DONE]');
  tally.add('streaming', r.status, r.status === 200 && ended, text);
}

async function disconnecting(url, tally) {
  const abort = new AbortController();
  const stream = Math.random() < 0.5;
  const body = JSON.stringify({ model: 'x', messages: [{ role: 'user', content: pick(PROMPTS) }], max_tokens: 400,
    ignore_eos: true, stream });
  setTimeout(() => abort.abort(), randInt(0, 400));
  try {
    const r = await fetch(url + '/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body, signal: abort.signal });
    await r.text();
    tally.add('disconnecting', `finished ${r.status}`, r.status === 200);
  } catch {
    tally.add('disconnecting', 'hung up', true);
  }
}

// 40 MiB of spaces, gzipped once (~40 KiB): compressing it blocks node for a while.
let gzipBomb = null;
const GZIP_BOMB = () => gzipBomb || (gzipBomb = zlib.gzipSync(Buffer.alloc(40 * MB, 32)));

// Hostile requests: each returns [status, whether that status is what it deserves].
const HEALTH = 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
const HOSTILE = {
  garbage: async (port) => (await exchange(port, Buffer.from(Array.from({ length: randInt(1, 2000) }, () => randInt(0, 255))))).status,
  bad_length: async (port) => (await exchange(port, postHead('/v1/chat/completions',
    pick(['Content-Length: -5\r\n', 'Content-Length: 1e18\r\n', 'Content-Length: 3\r\nContent-Length: 4\r\n'])) + '{}')).status,
  transfer_encoding: async (port) => (await exchange(port, postHead('/v1/chat/completions', 'Transfer-Encoding: gzip, chunked\r\n'))).status,
  bad_chunks: async (port) => (await exchange(port, postHead('/v1/chat/completions', 'Transfer-Encoding: chunked\r\n') + 'zz\r\n{}\r\n0\r\n\r\n')).status,
  huge_header: async (port) => (await exchange(port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(70000)}\r\n\r\n`)).status,
  many_headers: async (port) => (await exchange(port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${'X-A: b\r\n'.repeat(20000)}\r\n`)).status,
  long_uri: async (port) => (await exchange(port, `GET /${'a'.repeat(20000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)).status,
  bad_json: async (port) => {
    const body = pick(['{"model": ', '[]', '{"messages": "x"}', '\xff\xfe', `{"messages":${'['.repeat(50000)}`, 'null']);
    return (await exchange(port, postHead('/v1/chat/completions', `Content-Length: ${Buffer.byteLength(body)}\r\n`) + body)).status;
  },
  bad_fields: async (port) => {
    const body = JSON.stringify(pick([{ messages: [{ role: 'user', content: 'x' }], max_tokens: -1 },
      { messages: [{ role: 'user', content: 'x' }], max_tokens: 1e9 }, { messages: [{ role: 'wizard', content: 'x' }] },
      { messages: [{ role: 'user', content: 'x' }], n: 1000 }, { prompt: 5 }, { messages: [] }]));
    return (await exchange(port, postHead(pick(['/v1/chat/completions', '/v1/messages', '/v1/completions']),
      `Content-Length: ${Buffer.byteLength(body)}\r\n`) + body)).status;
  },
  wrong_method: async (port) => (await exchange(port, 'DELETE /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).status,
  unknown_route: async (port) => (await exchange(port, 'GET /admin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')).status,
  foreign_host: async (port) => (await exchange(port, 'GET /v1/models HTTP/1.1\r\nHost: evil.example\r\n\r\n')).status,
  cross_origin: async (port) => (await exchange(port, postHead('/v1/chat/completions', 'Origin: https://evil.example\r\nContent-Length: 2\r\n') + '{}')).status,
  gzip_bomb: async (port) => {
    const bomb = GZIP_BOMB();
    return (await exchange(port, Buffer.concat([Buffer.from(postHead('/v1/chat/completions',
      `Content-Encoding: gzip\r\nContent-Length: ${bomb.length}\r\n`)), bomb]))).status;
  },
  chunked_flood: async (port) => {
    const chunk = Buffer.concat([Buffer.from(`${MB.toString(16)}\r\n`), Buffer.alloc(MB, 97), Buffer.from('\r\n')]);
    let answered = false;
    return (await exchange(port, async (sock) => {
      sock.on('data', () => { answered = true; });
      if (!await writeAll(sock, postHead('/v1/chat/completions', 'Transfer-Encoding: chunked\r\n'))) return;
      for (let sent = 0; !answered && sent < 100 * MB && await writeAll(sock, chunk); sent += MB);
    }, { timeoutMs: 30000 })).status;
  },
  huge_tokenize: async (port) => {
    const body = JSON.stringify({ content: 'a'.repeat(5 * MB) });
    return (await exchange(port, postHead('/tokenize', `Content-Length: ${body.length}\r\n`) + body)).status;
  },
  cut_short: async (port) => (await exchange(port, async (sock) => { sock.write('GET /hea'); sock.end(); })).status,
  http10: async (port) => (await exchange(port, 'GET /health HTTP/1.0\r\n\r\n')).status,
  pipelined: async (port) => (await exchange(port, HEALTH + HEALTH + HEALTH)).status,
};

// 5xx answers that are right: 501 is HTTP's answer to a transfer coding it does not know.
const EXPECTED_5XX = new Set(['hostile transfer_encoding 501']);

// Every kind in turn, so the warm-up has seen them all; the heavy ones (tens of MB each)
// once per round, alternating.
const HEAVY = ['gzip_bomb', 'chunked_flood'];
const LIGHT = Object.keys(HOSTILE).filter((n) => !HEAVY.includes(n));
let hostileTurn = 0;
function nextHostile() {
  const round = Math.floor(hostileTurn / (LIGHT.length + 1));
  const i = hostileTurn++ % (LIGHT.length + 1);
  return i < LIGHT.length ? LIGHT[i] : HEAVY[round % HEAVY.length];
}

async function hostile(port, tally, stalls) {
  const name = nextHostile();
  const t0 = Date.now();
  const status = await bounded(HOSTILE[name](port), HOSTILE_DEADLINE_MS, `hostile ${name}`);
  if (status === 0 && stalls.during(t0 - LOOKBACK_MS, Date.now())) {
    tally.add('hostile', `${name} closed in a client stall`, true);
    return;
  }
  // Anything but a server error: 0 (closed without an answer) is fine for garbage.
  tally.add('hostile', `${name} ${status}`, status < 500 || EXPECTED_5XX.has(`hostile ${name} ${status}`), name);
}

// Keeps `n` connections open that trickle a request head (slow) or send nothing (idle).
async function holdConnections(port, n, slow, tally, running) {
  const head = Buffer.from(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`);
  const one = async () => {
    while (running()) {
      let sock;
      try {
        sock = await bounded(connect(port), 10000, 'connect');
      } catch (e) {
        tally.add(slow ? 'slow' : 'idle', `connect ${e.code}`, false, e);
        await sleep(100);
        continue;
      }
      let got = '';
      sock.on('data', (d) => { got += d; });
      sock.on('error', () => {});
      const closed = new Promise((r) => sock.on('close', r));
      if (slow) trickle(sock, head, { everyMs: 200, stop: () => !running() });
      await Promise.race([closed, (async () => { while (running()) await sleep(100); })()]);
      sock.destroy();
      const status = got.slice(9, 12) || 'closed';
      tally.add(slow ? 'slow' : 'idle', status, !running() || ['408', 'closed'].includes(status), got);
    }
  };
  await Promise.all(Array.from({ length: n }, one));
}

// Where each thread of process `pid` is: gdb's backtraces when gdb can attach, else each
// thread's kernel wait channel.
function threadDump(pid) {
  const gdb = spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'thread apply all bt 30'],
    { encoding: 'utf8', timeout: 60000 });
  if (gdb.status === 0 && /Thread \d/.test(gdb.stdout)) return gdb.stdout;
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
      const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const wchan = fs.readFileSync(`/proc/${pid}/task/${tid}/wchan`, 'utf8').trim();
      return `${tid} ${comm} ${wchan}`;
    }).join('\n');
  } catch (e) {
    return `no thread dump: ${e.message}`;
  }
}

// ----------------------------------------------------------------- the soak

test(`soak: ${SECONDS} s of mixed clients`, { timeout: (SECONDS + 120) * 1000 }, async (t) => {
  const s = await startServer({ bin: BIN, args: ['-m', MODEL, '-t', '1', '-q', '--parallel', '4', '--max-queue', '64',
    '-c', '2048', '--timeout-header', '2', '--timeout-body', '2'] });
  const tally = new Tally();
  const stalls = new Stalls(1000);
  // Backstop: every operation is bounded, so the test ends within about a minute of its
  // load. Should it still run 90 s after, the server's threads are shown and the server
  // killed: a hang then fails this test by name instead of holding CI to its limit.
  const watchdog = setTimeout(() => {
    console.error(`soak: still running ${SECONDS + 90} s in; the server's threads:\n${threadDump(s.pid)}`);
    stalls.stop();
    process.kill(s.pid, 'SIGKILL');
  }, (SECONDS + 90) * 1000);
  let phaseEnd = 0;
  const running = () => Date.now() < phaseEnd;
  const stuck = [];
  const loop = async (what, fn) => {
    while (running()) {
      const t0 = Date.now();
      try {
        await bounded(fn(), FETCH_DEADLINE_MS, what);
      } catch (e) {
        if (e instanceof Stuck) {
          tally.add('client', 'operation stuck in the client library', true);
          if (stuck.length < 20) stuck.push(e.message);
          continue;
        }
        if (closedUnderUs(e) && stalls.during(t0 - LOOKBACK_MS, Date.now())) {
          tally.add('client', 'closed in a client stall', true);
          continue;
        }
        if (closedUnderUs(e)) {
          // What a real client does next: the SDKs retry a request whose connection
          // closed before any answer (openai-node: twice); the loop's next request is
          // that retry. Kept rare below, and each one described.
          tally.add('client', 'closed without a stall, retried', true);
          if (closedWithoutStall.length < 20) closedWithoutStall.push(describeClose(e, t0));
          continue;
        }
        tally.add('client', `exception ${e.name}`, false, `${e.message}; cause: ${e.cause?.code || ""} ${e.cause?.message || e.cause}; ${e.stack}`);
        await sleep(50);
      }
    }
  };
  // One load phase: every client kind until `seconds` pass.
  const load = async (seconds) => {
    phaseEnd = Date.now() + seconds * 1000;
    await Promise.all([
      loop('normal', () => normal(s.url, tally)), loop('normal', () => normal(s.url, tally)),
      loop('streaming', () => streaming(s.url, tally)), loop('disconnecting', () => disconnecting(s.url, tally)),
      loop('hostile', () => hostile(s.port, tally, stalls)), loop('hostile', () => hostile(s.port, tally, stalls)),
      holdConnections(s.port, 40, true, tally, running), holdConnections(s.port, 100, false, tally, running),
    ]);
  };
  // Paused: nothing in flight, idle threads may stay; memory as the server keeps it.
  const quietRss = async () => {
    await sleep(1500);
    return s.rss();
  };

  let rssWarm = NaN;
  let rssEnd = NaN;
  try {
    await load(WARMUP_SECONDS);
    rssWarm = await quietRss();
    const warmCount = tally.total();
    await load(SECONDS - WARMUP_SECONDS);
    rssEnd = await quietRss();
    const health = await exchange(s.port, HEALTH, { timeoutMs: 10000 });
    assert.equal(health.status, 200, `the server does not answer /health after the soak (${health.error || ''})`);
    const metric = (name) => bounded(s.metric(name), 10000, `/metrics ${name}`);
    const open = await metric('pensieve_http_connections_open');
    // With the load stopped, every request has ended or been cancelled: one still active
    // or queued is a request the server lost track of.
    const active = await metric('pensieve_requests_active');
    const queued = await metric('pensieve_queue_depth');
    const fiveXX = Object.entries(tally.counts).filter(([k]) => / 5\d\d$/.test(k) && !EXPECTED_5XX.has(k));
    t.diagnostic(`requests: ${tally.total()} (${warmCount} in the ${WARMUP_SECONDS} s warm-up)`);
    t.diagnostic(`RSS after warm-up ${(rssWarm / MB).toFixed(1)} MiB, at the end ${(rssEnd / MB).toFixed(1)} MiB ` +
      `(${((rssEnd / rssWarm - 1) * 100).toFixed(1)}%); connections open at the end: ${open}`);
    t.diagnostic(`outcomes: ${JSON.stringify(tally.counts)}`);
    t.diagnostic(`client event loop: longest stall ${stalls.longestMs} ms, ${stalls.windows.length} over 1 s`);
    // Excused failures stay rare: a server that closes sockets it should not fails here
    // even when the client stalled.
    const excused = Object.entries(tally.counts).filter(([k]) => k.endsWith('client stall')).reduce((a, [, n]) => a + n, 0);
    assert.ok(excused <= tally.total() / 1000, `${excused} requests failed during client stalls`);
    assert.equal(active, 0, 'requests still generating with no client left');
    assert.equal(queued, 0, 'requests still queued with no client left');
    if (stuck.length) t.diagnostic(`operations stuck in the client library: ${stuck.join(' | ')}`);
    const nStuck = tally.counts['client operation stuck in the client library'] || 0;
    assert.ok(nStuck <= tally.total() / 10000, `${nStuck} client operations stuck`);
    const retried = tally.counts['client closed without a stall, retried'] || 0;
    if (retried) t.diagnostic(`connections closed under a request with no stall: ${closedWithoutStall.join(' | ')}`);
    assert.ok(retried <= tally.total() / 10000, `${retried} connections closed under a request with no client stall`);
    assert.deepEqual(fiveXX, [], 'server errors');
    assert.deepEqual(tally.failures, [], 'requests that should have worked');
    assert.ok(rssEnd <= rssWarm * 1.2, `RSS grew ${(rssWarm / MB).toFixed(1)} -> ${(rssEnd / MB).toFixed(1)} MiB`);
  } finally {
    clearTimeout(watchdog);
    stalls.stop();
    const { code, signal } = await s.stop();
    assert.equal(signal, null, `server died by ${signal}; stderr:\n${s.stderr().slice(-3000)}`);
    assert.equal(code, 0, `server exit code ${code}; stderr:\n${s.stderr().slice(-3000)}`);
  }
});
