// Replicas behind a real load balancer: three `pensieve serve` processes sharing one
// --cache-dir behind nginx with deploy/nginx/pensieve.conf (only the ports changed), 16
// clients holding conversations with X-Session-Id (half streaming) for DURATION_S; half
// way one replica is killed with SIGKILL. Checks:
//   - every non-streaming request is answered 200 (nginx retries on another replica);
//   - every stream either ends with [DONE] or fails visibly (the connection closes before
//     [DONE]: the client sees an error, never a silently short reply);
//   - after the kill settles (SETTLE_S) no request fails at all;
//   - conversations that moved (nginx's access log shows which replica served each
//     request) find their prefix in the shared disk cache: their first turn on the new
//     replica reuses cached tokens, which only the dead replica had computed (every
//     conversation has a system prompt of its own); the survivors' /metrics count
//     disk-hit blocks;
//   - a replica given SIGTERM finishes the stream it serves, exits 0, and nginx sends
//     new work to the others (graceful drain).
// Prints one line of figures (for bench/RESULTS.md).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort, startServer } from '../lib/pensieve_server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve');
const SHARED = process.env.PENSIEVE_SHARED || path.resolve(root, '../shared');
const MODEL = path.join(SHARED, 'models/stories260K.gguf');
const DURATION_S = Number(process.env.DEPLOY_SECONDS || 24);
const SETTLE_S = 3;
const CLIENTS = 16;
const NGINX = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-deploy-'));
const cacheDir = path.join(work, 'cache');
fs.mkdirSync(cacheDir);
const replicas = [];
let nginx = null;

after(async () => {
  if (nginx && nginx.exitCode === null) {
    nginx.kill('SIGQUIT');
    await new Promise((r) => nginx.once('exit', r));
  }
  for (const r of replicas) await r.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

async function startNginx(ports) {
  const conf = fs.readFileSync(path.join(root, 'deploy/nginx/pensieve.conf'), 'utf8');
  const listen = await freePort();
  const ours = conf.replace(/listen 8080;/, `listen 127.0.0.1:${listen};`);
  assert.notEqual(ours, conf, 'deploy/nginx/pensieve.conf no longer has the listen line this test changes');
  fs.writeFileSync(path.join(work, 'pensieve.conf'), ours);
  fs.writeFileSync(path.join(work, 'pensieve-replicas.conf'),
    ports.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=5s;\n`).join(''));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(work, d));
  fs.writeFileSync(path.join(work, 'nginx.conf'), `
daemon off;
${process.getuid() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${work}/nginx.pid;
error_log ${work}/error.log warn;
events { worker_connections 1024; }
http {
  log_format sessions '$http_x_session_id $upstream_addr $status';
  access_log ${work}/access.log sessions;
  client_body_temp_path ${work}/body;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  include ${work}/pensieve.conf;
}
`);
  nginx = spawn(NGINX, ['-p', work, '-c', path.join(work, 'nginx.conf'), '-e', path.join(work, 'error.log')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  nginx.stderr.on('data', (d) => { stderr += d; });
  const url = `http://127.0.0.1:${listen}`;
  for (const end = Date.now() + 10000; ;) {
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) return url;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`nginx not answering: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// One client's conversation: a system prompt of its own (long enough to fill KV blocks),
// turns appended, restarted after 12 turns (a new session id).
function conversation(client, round) {
  const topic = ['dragons', 'the sea', 'a red ball', 'a small cat', 'the moon', 'a garden', 'a big tree', 'rain'][client % 8];
  return {
    session: `client-${client}-conv-${round}`,
    messages: [{ role: 'system', content: `You are storyteller ${client}-${round}. Every story is about ${topic}. `.repeat(12) }],
  };
}

async function turn(url, conv, stream) {
  conv.messages.push({ role: 'user', content: `Tell me part ${conv.messages.length} of the story.` });
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Session-Id': conv.session },
    body: JSON.stringify({ messages: conv.messages, max_tokens: 12, temperature: 0, stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}) }),
  });
  const session = conv.session;
  if (!stream) {
    const body = await res.text();
    if (res.status !== 200) return { ok: false, kind: `http ${res.status}`, session };
    const r = JSON.parse(body);
    conv.messages.push({ role: 'assistant', content: r.choices[0].message.content });
    return { ok: true, session, cached: r.usage.prompt_tokens_details.cached_tokens };
  }
  if (res.status !== 200) return { ok: false, kind: `http ${res.status}`, session };
  let text = '', content = '', cached = 0;
  try {
    for await (const chunk of res.body) text += Buffer.from(chunk).toString();
  } catch (e) {
    return { ok: false, kind: 'stream broken', visible: true, session };  // the client saw the error
  }
  if (!text.includes('data: [DONE]')) return { ok: false, kind: 'stream short', visible: false, session };
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const chunk = JSON.parse(line.slice(6));
    content += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) cached = chunk.usage.prompt_tokens_details.cached_tokens;
  }
  conv.messages.push({ role: 'assistant', content });
  return { ok: true, session, cached };
}

// n session ids that nginx sends to the replica on `port` (learnt from its access log).
async function sessionsOn(url, port, n) {
  const found = [];
  for (let k = 0; found.length < n && k < 200; k++) {
    const session = `long-${k}`;
    await turn(url, { session, messages: [] }, false);
    const log = fs.readFileSync(path.join(work, 'access.log'), 'utf8');
    const line = log.split('\n').reverse().find((l) => l.startsWith(`${session} `));
    if (line && line.includes(`:${port} `)) found.push(session);
  }
  return found;
}

// A stream long enough to be cut by the kill.
async function longStream(url, session) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Session-Id': session },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 1800, temperature: 0, stream: true, ignore_eos: true }),
  });
  let text = '';
  try {
    for await (const chunk of res.body) text += Buffer.from(chunk).toString();
  } catch {
    return { ok: false, kind: 'stream broken', visible: true, bytes: text.length };
  }
  return text.includes('data: [DONE]') ? { ok: true } : { ok: false, kind: 'stream short', visible: false };
}

test('three replicas behind nginx survive losing one', async () => {
  for (let i = 0; i < 3; i++) {
    replicas.push(await startServer({
      bin: BIN,
      args: ['-m', MODEL, '-t', '1', '-c', '2048', '--parallel', '4', '--cache-dir', cacheDir, '-q',
        '--timeout-shutdown', '20'],
    }));
  }
  const url = await startNginx(replicas.map((r) => r.port));
  const doomed = await sessionsOn(url, replicas[0].port, 2);
  assert.equal(doomed.length, 2, 'no session ids hash to the first replica');

  const results = [];  // { t, stream, ok, kind, visible }
  const t0 = Date.now();
  const killAt = t0 + (DURATION_S * 1000) / 2;
  const end = t0 + DURATION_S * 1000;
  let killed = null;
  let cut = [];
  const killer = (async () => {
    await new Promise((r) => setTimeout(r, killAt - 300 - Date.now()));
    const streams = doomed.map((s) => longStream(url, s));  // in flight on the replica about to die
    await new Promise((r) => setTimeout(r, 300));
    killed = replicas[0];
    process.kill(killed.pid, 'SIGKILL');
    cut = await Promise.all(streams);
  })();
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    let round = 0;
    let conv = conversation(c, round);
    while (Date.now() < end) {
      const stream = c % 2 === 1;
      const r = await turn(url, conv, stream);
      results.push({ t: Date.now(), stream, ...r });
      if (!r.ok) conv.messages.pop();  // the client tries that turn again, in the same conversation
      if (conv.messages.length > 25) conv = conversation(c, ++round);
    }
  }));
  await killer;

  const survivors = replicas.filter((r) => r !== killed);
  let diskHits = 0;
  for (const r of survivors) diskHits += await r.metric('pensieve_prefix_cache_disk_hit_blocks_total');

  // Which replica served each request (nginx's log, in order; a retried one lists both).
  const served = new Map();  // session -> [port of each request]
  for (const line of fs.readFileSync(path.join(work, 'access.log'), 'utf8').split('\n')) {
    const [session, ...rest] = line.split(' ');
    if (!session || session === '-') continue;
    const addrs = rest.slice(0, -1).join(' ').split(',').map((a) => a.trim());
    const port = Number(addrs[addrs.length - 1].split(':')[1]);
    if (!served.has(session)) served.set(session, []);
    served.get(session).push(port);
  }
  // Conversations the dead replica served that went on elsewhere: their first turn there.
  const moved = [];
  for (const [session, ports] of served) {
    const first = ports.findIndex((p) => p !== killed.port && ports.slice(0, ports.indexOf(p)).includes(killed.port));
    if (first < 0) continue;
    const turns = results.filter((r) => r.session === session);  // in order, as the log
    if (first >= 2 && turns[first]?.ok) moved.push(turns[first].cached);  // two turns done on the dead one
  }

  const settled = killAt + SETTLE_S * 1000;
  const failed = results.filter((r) => !r.ok);
  const figures = {
    requests: results.length,
    streams: results.filter((r) => r.stream).length,
    failed: failed.length,
    failed_kinds: [...new Set(failed.map((r) => r.kind))],
    failed_after_settle: failed.filter((r) => r.t > settled).length,
    moved_conversations: moved.length,
    moved_reusing_cache: moved.filter((c) => c > 0).length,
    moved_mean_cached_tokens: moved.length ? Math.round(moved.reduce((a, b) => a + b, 0) / moved.length) : 0,
    survivors_disk_hit_blocks: diskHits,
    long_streams_cut: cut.filter((c) => c.kind === 'stream broken').length,
  };
  console.log(`deploy figures: ${JSON.stringify(figures)}`);

  assert.ok(results.length > 100, `only ${results.length} requests`);
  assert.deepEqual(failed.filter((r) => !r.stream), [], 'a non-streaming request failed');
  assert.deepEqual(failed.filter((r) => r.stream && !r.visible), [], 'a stream ended short without an error');
  assert.equal(figures.failed_after_settle, 0, 'requests failed after the kill settled');
  assert.ok(moved.length >= 1, "no conversation moved");
  assert.equal(figures.moved_reusing_cache, moved.length, 'a moved conversation did not find its prefix on disk');
  assert.ok(diskHits > 0);
  // The streams the kill cut: each ended in an error the client saw, after some tokens.
  assert.equal(cut.length, 2);
  for (const c of cut) assert.equal(c.kind, 'stream broken', JSON.stringify(c));

  // Graceful drain: SIGTERM during a stream: it finishes, the replica exits 0, and new
  // requests go to the last replica.
  const [draining, last] = survivors;
  const long = fetch(`http://127.0.0.1:${draining.port}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 1500, temperature: 0, stream: true, ignore_eos: true }),
  }).then(async (res) => {
    let text = '';
    for await (const chunk of res.body) text += Buffer.from(chunk).toString();
    return text;
  });
  await new Promise((r) => setTimeout(r, 100));
  const stopped = draining.stop();
  const after = [];
  for (let i = 0; i < 8; i++) after.push((await turn(url, conversation(100 + i, 0), i % 2 === 1)).ok);
  const text = await long;
  assert.match(text, /data: \[DONE\]/, 'the stream in flight at SIGTERM did not finish');
  assert.deepEqual(await stopped, { code: 0, signal: null }, draining.stderr());
  assert.deepEqual(after, Array(8).fill(true), 'requests during the drain failed');
  assert.ok(await last.metric('pensieve_requests_finished_total') > 0);
});
