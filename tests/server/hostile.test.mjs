// `pensieve serve` against hostile and careless clients, over raw sockets where fetch and
// the SDKs would not misbehave. One test (group) per row of the hardening issue:
//   2  a non-streaming request stops when its client hangs up
//   3  the body limit holds while reading, for every transfer and content encoding
//   4  slow, idle and bursting clients never delay /health or a normal request; header
//      and body deadlines; a connection cap with a clean 503
//   5  malformed Content-Length -> 400 at once; a wrong method -> 405 with Allow
//   8  exposure: the warning for a non-loopback --host without a key, Host and Origin
//      checks without a key (DNS rebinding, CSRF), --cors as an explicit origin list
//  15  memory returns after huge requests; /tokenize and /detokenize are bounded
// plus /favicon.ico and the request-parser rows (nesting, numbers, JSON-schema bounds).
// ~40 s. Starts $PENSIEVE_BIN (default build/pensieve) with stories260K.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

import { startServer } from '../lib/pensieve_server.mjs';
import { connect, exchange, postHead, trickle, writeAll } from '../lib/raw_http.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve');
const SHARED = process.env.PENSIEVE_SHARED || path.resolve(root, '../shared');
const MODEL = path.join(SHARED, 'models/stories260K.gguf');
const MB = 1 << 20;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const chat = (content, maxTokens, extra = {}) =>
  JSON.stringify({ model: 'stories260K', messages: [{ role: 'user', content }], max_tokens: maxTokens, temperature: 0, ...extra });

async function waitFor(cond, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(25);
  }
  return cond();
}

function start(args) {
  return startServer({ bin: BIN, args: ['-m', MODEL, '-t', '1', '-q', ...args] });
}

async function stopCleanly(s) {
  const { code, signal } = await s.stop();
  assert.equal(signal, null, `server died by ${signal}; stderr:\n${s.stderr()}`);
  assert.equal(code, 0, `server exit code ${code}; stderr:\n${s.stderr()}`);
}

// timeoutMs: how long counts as a hang (row 15's 30 MB bodies get longer: on a loaded
// 2-core host tokenizing 3 MB took over 10 s once).
async function timedFetch(url, init = {}, timeoutMs = 10000) {
  const t0 = Date.now();
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const body = await r.text();
  return { status: r.status, headers: r.headers, body, ms: Date.now() - t0 };
}

// One server for most rows: one slot (so slots cannot hide a starved connection pool),
// short header and body deadlines, room for a long generation.
let s;
before(async () => {
  s = await start(['--parallel', '1', '--max-queue', '1', '-c', '8192', '--timeout-header', '2', '--timeout-body', '2']);
});
after(async () => {
  if (s) await stopCleanly(s);
});

describe('row 2: hang-ups', () => {
  test('a non-streaming request stops generating when its client hangs up', async () => {
    const cancelled0 = await s.metric('pensieve_requests_cancelled_total');
    const abort = new AbortController();
    const pending = fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: chat('Once upon a time', 8000, { ignore_eos: true }), signal: abort.signal,
    }).catch(() => null);
    assert.ok(await waitFor(async () => (await s.metric('pensieve_requests_active')) === 1, 10000), 'never started');
    abort.abort();
    await pending;
    const stopped = await waitFor(async () => (await s.metric('pensieve_requests_active')) === 0 &&
      (await s.metric('pensieve_requests_cancelled_total')) === cancelled0 + 1, 2000);
    assert.ok(stopped, 'still generating 2 s after the client hung up');
  });
});

describe('row 3: body limit while reading', () => {
  test('a chunked body over the limit gets 413 before the server has read it all', async () => {
    const rss0 = s.rss();
    let sent = 0;
    let answered = false;
    const chunk = Buffer.concat([Buffer.from(`${(MB).toString(16)}\r\n`), Buffer.alloc(MB, 97), Buffer.from('\r\n')]);
    const r = await exchange(s.port, async (sock) => {
      sock.on('data', () => { answered = true; });
      if (!await writeAll(sock, postHead('/v1/chat/completions', 'Transfer-Encoding: chunked\r\n'))) return;
      while (!answered && sent < 300 * MB && await writeAll(sock, chunk)) sent += MB;
    }, { timeoutMs: 30000 });
    assert.equal(r.status, 413, JSON.stringify(r));
    assert.match(r.body, /too large/);
    assert.ok(sent < 100 * MB, `sent ${sent / MB} MiB before the answer`);
    assert.ok(s.rss() < rss0 + 100 * MB, `RSS grew from ${rss0 / MB} to ${s.rss() / MB} MiB`);
  });

  test('a gzip body is limited by its decoded size (zip bomb)', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * MB, 32));  // ~64 KiB on the wire
    const r = await exchange(s.port, Buffer.concat([
      Buffer.from(postHead('/v1/chat/completions', `Content-Encoding: gzip\r\nContent-Length: ${bomb.length}\r\n`)), bomb]));
    assert.equal(r.status, 413, JSON.stringify(r));
  });

  test('a Content-Length over the limit gets 413 without the body being sent', async () => {
    const r = await exchange(s.port, postHead('/v1/chat/completions', `Content-Length: ${300 * MB}\r\n`));
    assert.equal(r.status, 413);
    assert.ok(r.ms < 1000, `${r.ms} ms`);
  });
});

describe('row 4: slow and idle clients', () => {
  test('1000 slow or idle connections delay neither /health nor a request, and end with 408', async () => {
    const head = Buffer.from(`GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(100)}\r\n\r\n`);
    const sockets = await Promise.all(Array.from({ length: 1000 }, () => connect(s.port)));
    const answers = sockets.map((sock) => new Promise((resolve) => {
      let got = '';
      sock.on('data', (d) => { got += d; });
      sock.on('close', () => resolve(got.slice(0, 12)));
      sock.on('error', () => {});
    }));
    // Half trickle their head a byte a second, half send nothing.
    sockets.slice(0, 500).forEach((sock) => trickle(sock, head, { everyMs: 1000 }));
    const started = Date.now();
    let worst = 0;
    for (let i = 0; i < 4; ++i) {
      await sleep(250);
      const h = await timedFetch(`${s.url}/health`);
      assert.equal(h.status, 200);
      const c = await timedFetch(`${s.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: chat('Hi', 4) });
      assert.equal(c.status, 200, c.body);
      worst = Math.max(worst, h.ms, c.ms);
    }
    assert.ok(worst < 1000, `slowest /health or request: ${worst} ms`);
    const got = await Promise.all(answers);
    const tricklers = got.slice(0, 500);
    assert.ok(tricklers.every((g) => g === 'HTTP/1.1 408'), `trickling clients got ${[...new Set(tricklers)]}`);
    assert.ok(Date.now() - started < 6000, 'the 2 s header deadline did not cut them off');
  });

  test('1000 simultaneous connects are all served promptly (listen backlog)', async () => {
    const results = await Promise.all(Array.from({ length: 1000 }, () =>
      exchange(s.port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 })));
    const bad = results.filter((r) => r.status !== 200);
    assert.equal(bad.length, 0, `${bad.length} of 1000 failed, e.g. ${JSON.stringify(bad[0])}`);
  });

  test('a body sent too slowly ends with 408', async () => {
    const r = await exchange(s.port, postHead('/v1/chat/completions', 'Content-Length: 100\r\n') + '{"model"');
    assert.equal(r.status, 408, JSON.stringify(r));
    assert.ok(r.ms < 4000, `${r.ms} ms`);
  });

  test('connections over --max-connections get a clean 503', async () => {
    const capped = await start(['--max-connections', '50']);
    try {
      const held = await Promise.all(Array.from({ length: 50 }, () => connect(capped.port)));
      held.forEach((h) => h.on('error', () => {}));
      await sleep(300);  // all 50 accepted
      const r = await exchange(capped.port, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      assert.equal(r.status, 503, JSON.stringify(r));
      assert.equal(r.headers['retry-after'], '1');
      assert.match(JSON.parse(r.body).error.message, /too many open connections/);
      held.forEach((h) => h.destroy());
      assert.ok(await waitFor(async () => (await fetch(`${capped.url}/health`)).status === 200, 3000));
    } finally {
      await stopCleanly(capped);
    }
  });
});

describe('row 5: framing and methods', () => {
  for (const framing of ['Content-Length: -5\r\n', 'Content-Length: 1e18\r\n',
    'Content-Length: 10\r\nContent-Length: 12\r\n', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n']) {
    test(`${framing.trim().replaceAll('\r\n', ' + ')} -> 400 at once`, async () => {
      const r = await exchange(s.port, postHead('/v1/chat/completions', framing) + '{}');
      assert.equal(r.status, 400, JSON.stringify(r));
      assert.ok(r.ms < 1000, `${r.ms} ms`);
      assert.ok(JSON.parse(r.body).error.message.length > 0);
    });
  }

  test('a wrong method on a known route -> 405 with Allow', async () => {
    const a = await timedFetch(`${s.url}/v1/chat/completions`);
    assert.equal(a.status, 405);
    assert.equal(a.headers.get('allow'), 'POST');
    const b = await timedFetch(`${s.url}/v1/models`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(b.status, 405);
    assert.equal(b.headers.get('allow'), 'GET, HEAD');
    const c = await timedFetch(`${s.url}/health`, { method: 'PUT', body: '' });
    assert.equal(c.status, 405);
    assert.equal((await timedFetch(`${s.url}/no/such/route`)).status, 404);
  });
});

describe('row 8: exposure', () => {
  test('--host 0.0.0.0 without a key warns at start and in /health', async () => {
    const open = await start(['--host', '0.0.0.0']);
    try {
      assert.match(open.stderr(), /WARNING: listening on 0\.0\.0\.0 without an API key/);
      const h = JSON.parse((await timedFetch(`${open.url}/health`)).body);
      assert.equal(h.status, 'ok');
      assert.match(h.warnings[0], /without an API key/);
    } finally {
      await stopCleanly(open);
    }
    assert.equal(JSON.parse((await timedFetch(`${s.url}/health`)).body).warnings, undefined);
  });

  test('without a key, a foreign Host (DNS rebinding) is refused', async () => {
    const r = await exchange(s.port, 'GET /v1/models HTTP/1.1\r\nHost: rebind.evil.example:8080\r\n\r\n');
    assert.equal(r.status, 403, JSON.stringify(r));
    const ok = await exchange(s.port, `GET /v1/models HTTP/1.1\r\nHost: localhost:${s.port}\r\n\r\n`);
    assert.equal(ok.status, 200);
  });

  test('without a key, cross-origin POSTs are refused; the page\'s own origin and SDKs work', async () => {
    const body = chat('Hi', 2);
    const foreign = await timedFetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'text/plain', Origin: 'https://evil.example' }, body });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
    const own = await timedFetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Origin: s.url }, body });
    assert.equal(own.status, 200, own.body);
    const openai = new OpenAI({ apiKey: 'unused', baseURL: `${s.url}/v1`, maxRetries: 0 });
    const r = await openai.chat.completions.create({ model: 'stories260K', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
    assert.equal(r.object, 'chat.completion');
  });

  test('--cors lists the origins allowed; others get no CORS headers and 403', async () => {
    const cors = await start(['--cors', 'http://localhost:3000,https://app.example']);
    try {
      const pre = await timedFetch(`${cors.url}/v1/chat/completions`, { method: 'OPTIONS', headers: {
        Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), 'http://localhost:3000');
      const ok = await timedFetch(`${cors.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'https://app.example' }, body: chat('Hi', 2) });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
      const other = await timedFetch(`${cors.url}/v1/chat/completions`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'http://localhost:3001' }, body: chat('Hi', 2) });
      assert.equal(other.status, 403);
      assert.equal(other.headers.get('access-control-allow-origin'), null);
    } finally {
      await stopCleanly(cors);
    }
    await assert.rejects(start(['--cors', 'localhost:3000']), /not an origin/);
  });
});

describe('row 15: memory', () => {
  test('memory comes back after huge requests; /tokenize and /detokenize are bounded', async () => {
    const huge = 'Once upon a time there was a little dog. '.repeat(30 * MB / 41);
    const rss0 = s.rss();
    const t = await timedFetch(`${s.url}/tokenize`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: huge }) }, 60000);
    assert.equal(t.status, 413);
    assert.match(JSON.parse(t.body).error.message, /limit/);
    const c = await timedFetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', prompt: huge, max_tokens: 1 }) }, 60000);
    assert.equal(c.status, 400);
    const ok = await timedFetch(`${s.url}/tokenize`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: huge.slice(0, 3 * MB) }) }, 60000);
    assert.equal(ok.status, 200);
    const rss1 = s.rss();
    assert.ok(rss1 < rss0 + 30 * MB, `RSS ${(rss0 / MB).toFixed(0)} -> ${(rss1 / MB).toFixed(0)} MiB after huge requests`);
    const d = await timedFetch(`${s.url}/detokenize`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: `{"tokens": [${'1,'.repeat(1 << 20)}1]}` }, 60000);
    assert.equal(d.status, 413);
  });
});

describe('the rest', () => {
  test('/favicon.ico is 204, not 404', async () => {
    assert.equal((await timedFetch(`${s.url}/favicon.ico`)).status, 204);
  });

  const post = (body) => timedFetch(`${s.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body });

  test('deeply nested JSON -> 400', async () => {
    const r = await post(`{"model":"x","messages":[{"role":"user","content":${'['.repeat(100000)}${']'.repeat(100000)}}]}`);
    assert.equal(r.status, 400, r.body);
  });

  test('temperature 1e400 -> 400', async () => {
    const r = await post('{"model":"x","messages":[{"role":"user","content":"hi"}],"temperature":1e400,"max_tokens":2}');
    assert.equal(r.status, 400, r.body);
  });

  test('JSON-schema minimum/maximum are enforced', async () => {
    const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 5, maximum: 7 } }, required: ['n'],
      additionalProperties: false };
    for (let seed = 0; seed < 5; ++seed) {
      const r = await post(JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'A number' }], max_tokens: 40,
        temperature: 1.5, seed, response_format: { type: 'json_schema', json_schema: { name: 'n', schema } } }));
      assert.equal(r.status, 200, r.body);
      const n = JSON.parse(JSON.parse(r.body).choices[0].message.content).n;
      assert.ok(n >= 5 && n <= 7, `n = ${n}`);
    }
  });
});
