#!/usr/bin/env node
// Serving load test: N concurrent streaming chat clients against `pensieve serve`.
//
// For each concurrency level (default 1, 4, 16) every client sends streaming
// /v1/chat/completions requests back to back until the level's duration is over (no new
// request starts after it; the ones running finish). Reported per level:
//   aggregate generation tokens/s = all completion tokens / wall time of the level,
//   time to first token (request sent -> first content delta) p50 / p95,
//   per-request decode speed, and errors (must be 0).
// Exit status 1 if any request failed, or if aggregate tokens/s with 4 clients is not at
// least --min-scaling times the 1-client figure.
//
// Starts the server itself (pensieve serve, --parallel = the highest level, -t 2) unless
// --url points at a running one. Plain fetch (Node >= 18), no dependencies.
//
//   node bench/load_test.mjs                       # stories260K, 1/4/16 clients, 15 s each
//   node bench/load_test.mjs --model /work/models/synth-1b-Q4_0.gguf --duration 20 --max-tokens 32
//   node bench/load_test.mjs --url http://127.0.0.1:8080 --levels 1,4
//   node bench/load_test.mjs --model target.gguf --levels 1,4 --server-args "--draft-layers 2"
//   node bench/load_test.mjs --model m.gguf --levels 4 --long-prompt 4096 --ctx 8192
//     (a quarter into each level one more request brings a ~4096-token prompt: the table's
//     last columns give its prefill time and the longest gap between two tokens any
//     streaming client saw while that prompt was being read)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { startServer as startPensieve } from '../tests/lib/pensieve_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const { values: opt } = parseArgs({
  options: {
    bin: { type: 'string', default: process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve') },
    model: { type: 'string', default: path.resolve(root, '../shared/models/stories260K.gguf') },
    url: { type: 'string' },                       // benchmark a running server instead
    levels: { type: 'string', default: '1,4,16' },
    duration: { type: 'string', default: '15' },   // seconds of new requests per level
    'max-requests': { type: 'string', default: '0' }, // per client and level; 0: no cap
    'max-tokens': { type: 'string', default: '96' },
    temperature: { type: 'string', default: '0.8' },
    threads: { type: 'string', default: '2' },
    parallel: { type: 'string' },                  // default: the highest level
    ctx: { type: 'string', default: '1024' },      // per slot
    'server-args': { type: 'string', default: '' }, // more flags for pensieve serve, e.g. "--draft-layers 2"
    'min-scaling': { type: 'string', default: '1.5' },
    'request-timeout': { type: 'string', default: '300' },
    'long-prompt': { type: 'string', default: '0' },  // tokens of one long prompt sent mid-level
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 20)
    .map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const levels = opt.levels.split(',').map(Number);
const duration = Number(opt.duration) * 1000;
const maxRequests = Number(opt['max-requests']);
const maxTokens = Number(opt['max-tokens']);
const temperature = Number(opt.temperature);
// The long prompt (--long-prompt) gets a slot of its own beside the level's clients.
const parallel = Number(opt.parallel || Math.max(...levels) + (Number(opt['long-prompt']) > 0 ? 1 : 0));

// Varied prompts: different lengths and openings, so requests do not all share a prefix
// (the prefix cache would otherwise make prompt processing free).
const OPENINGS = [
  'Once upon a time there was a little girl named Lily.',
  'Tell me a story about a dog who found a big red ball.',
  'Tom and his sister went to the park one sunny day.',
  'Write a short story about a cat that wanted to fly.',
  'There was a small boat on a big blue sea.',
  'A bird lived in a tree next to a river.',
  'Sam had a toy car that he loved very much.',
  'One day, a little bunny hopped into the garden.',
  'The sun was shining and the children were playing outside.',
  'Mom baked a cake and put it on the table.',
  'Ben wanted to help his dad fix the old fence.',
  'In a quiet town lived an old man who liked to sing.',
];
function prompt(client, n) {
  const a = OPENINGS[(client * 7 + n) % OPENINGS.length];
  const b = OPENINGS[(client * 3 + n * 5 + 1) % OPENINGS.length];
  return n % 3 === 0 ? a : `${a} ${b}`;
}

// ---------------------------------------------------------------- server

async function startServer() {
  const s = await startPensieve({
    bin: opt.bin, readyMs: 300000, killAfterMs: 30000, log: (m) => console.error(`starting ${m}`),
    args: ['-m', opt.model, '--parallel', String(parallel), '-t', opt.threads, '-c', opt.ctx,
      '--max-queue', String(Math.max(64, 2 * Math.max(...levels))), '-q',
      ...opt['server-args'].split(' ').filter(Boolean)],
  });
  const stop = async () => {
    const r = await s.stop();
    if (r.code !== 0) console.error(`server exit: ${JSON.stringify(r)}\n${s.stderr()}`);
  };
  return { url: s.url, stop };
}

async function metric(url, name) {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

// ---------------------------------------------------------------- one streaming request

// Sends one streaming chat request; resolves to {ok, ttft, total, tokens, deltas, error}.
// `gaps` (optional) collects [start, end] of the time between consecutive content deltas.
async function streamChat(url, content, { gaps = null, max_tokens = maxTokens } = {}) {
  const t0 = performance.now();
  const r = { ok: false, ttft: NaN, total: NaN, tokens: 0, deltas: 0, error: null, promptTokens: 0 };
  let lastDelta = NaN;
  try {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        model: 'default', stream: true, max_tokens, temperature,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content }],
      }),
      signal: AbortSignal.timeout(Number(opt['request-timeout']) * 1000),
    });
    if (res.status !== 200) {
      r.error = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
      return r;
    }
    const decoder = new TextDecoder();
    let buffer = '';
    let done = false;
    let finish = null;
    let usage = null;
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') { done = true; continue; }
          const j = JSON.parse(data);
          if (j.error) throw new Error(`stream error: ${JSON.stringify(j.error)}`);
          if (j.usage) usage = j.usage;
          const c = j.choices && j.choices[0];
          if (!c) continue;
          if (c.delta && c.delta.content) {
            const now = performance.now();
            if (!r.deltas) r.ttft = now - t0;
            else if (gaps) gaps.push([lastDelta, now]);
            lastDelta = now;
            r.deltas++;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
    }
    r.total = performance.now() - t0;
    if (!done) throw new Error('stream ended without [DONE]');
    if (!finish) throw new Error('no finish_reason');
    if (!usage) throw new Error('no usage chunk');
    if (finish !== 'length' && finish !== 'stop') throw new Error(`finish_reason ${finish}`);
    r.tokens = usage.completion_tokens;
    r.promptTokens = usage.prompt_tokens;
    if (!r.deltas) r.ttft = r.total; // nothing visible came (e.g. EOS first): count the whole request
    r.ok = true;
  } catch (e) {
    r.error = String(e && e.message ? e.message : e);
  }
  return r;
}

// ---------------------------------------------------------------- a level

function percentile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

// A prompt of about n tokens (story words are ~1.3 tokens each), new each call so that the
// prefix cache cannot serve it.
let longPromptCount = 0;
function longPrompt(n) {
  const words = [`Story ${++longPromptCount} for ${Date.now()}:`];
  for (let i = 0; words.length < n / 1.25; i++) words.push(...OPENINGS[i % OPENINGS.length].split(' '));
  return words.join(' ');
}

async function runLevel(url, clients) {
  const results = [];
  const gaps = [];
  const generatedBefore = await metric(url, 'pensieve_generated_tokens_total');
  const start = performance.now();
  const deadline = start + duration;
  const long = { sent: NaN, result: null };
  const nLong = Number(opt['long-prompt']);
  const longRequest = nLong > 0 && (async () => {
    await new Promise((res) => setTimeout(res, duration / 4));
    long.sent = performance.now();
    long.result = await streamChat(url, longPrompt(nLong), { max_tokens: 1 });
  })();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let n = 0; performance.now() < deadline && (!maxRequests || n < maxRequests); n++) {
      results.push(await streamChat(url, prompt(c, n), { gaps }));
    }
  }));
  if (longRequest) await longRequest;
  const wall = (performance.now() - start) / 1000;
  const generatedAfter = await metric(url, 'pensieve_generated_tokens_total');
  const ok = results.filter((r) => r.ok);
  const errors = results.filter((r) => !r.ok);
  const tokens = ok.reduce((s, r) => s + r.tokens, 0);
  const ttft = ok.map((r) => r.ttft);
  // Per-request decode speed: tokens after the first / time after the first.
  const decode = ok.filter((r) => r.tokens > 1 && r.total > r.ttft)
    .map((r) => (r.tokens - 1) / ((r.total - r.ttft) / 1000));
  return {
    clients, requests: results.length, errors, tokens, wall,
    aggregate: tokens / wall,
    ttftP50: percentile(ttft, 50), ttftP95: percentile(ttft, 95), ttftP99: percentile(ttft, 99),
    gapMax: gaps.reduce((m, [a, b]) => Math.max(m, b - a), 0),
    long: long.result && longSummary(long, gaps),
    decodeMean: decode.length ? decode.reduce((a, b) => a + b, 0) / decode.length : NaN,
    serverTokens: generatedAfter - generatedBefore,
  };
}

// The long prompt's time to its first token (its prefill, queueing included) and the
// longest gap between two tokens of a streaming client that overlaps its reading.
function longSummary(long, gaps) {
  const r = long.result;
  if (!r.ok) return { error: r.error };
  const end = long.sent + r.ttft;
  const during = gaps.filter(([a, b]) => b > long.sent && a < end);
  return {
    promptTokens: r.promptTokens, prefillMs: r.ttft,
    worstGap: during.reduce((m, [a, b]) => Math.max(m, b - a), 0),
  };
}

// Other work on the machine skews every number here: say how busy it was before the
// benchmark started (its own load would show in any later reading).
function loadNote(before) {
  const busy = before > os.cpus().length * 0.25;
  return `Load average (1 min) before the start: ${before.toFixed(2)} on ${os.cpus().length} CPUs` +
    (busy ? ' (the machine was busy with other work: these numbers are pessimistic)' : '') + '.';
}

// ---------------------------------------------------------------- main

const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

async function main() {
  const load0 = os.loadavg()[0];
  const server = opt.url ? { url: opt.url.replace(/\/$/, ''), stop: async () => {} } : await startServer();
  const onSignal = async () => { await server.stop(); process.exit(130); };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, onSignal);
  let failed = false;
  const rows = [];
  try {
    // Warm-up (first-touch page faults, thread start-up), not measured.
    const w = await streamChat(server.url, 'Hello');
    if (!w.ok) throw new Error(`warm-up request failed: ${w.error}`);
    for (const clients of levels) {
      console.error(`level: ${clients} client(s) for ${opt.duration} s ...`);
      const r = await runLevel(server.url, clients);
      rows.push(r);
      for (const e of r.errors.slice(0, 5)) console.error(`  error: ${e.error}`);
      if (r.errors.length) failed = true;
      if (Number.isFinite(r.serverTokens) && r.serverTokens !== r.tokens)
        console.error(`  note: the server counted ${r.serverTokens} generated tokens, the clients ${r.tokens}`);
    }
  } finally {
    await server.stop();
  }

  const model = opt.url ? opt.url : path.basename(opt.model);
  console.log(`\nModel ${model}, --parallel ${parallel}, -t ${opt.threads}, max_tokens ${maxTokens}, ` +
    `temperature ${temperature}, ${opt.duration} s per level\n`);
  const withLong = Number(opt['long-prompt']) > 0;
  console.log('| clients | requests | completion tokens | wall s | aggregate tok/s | per-request decode tok/s | ' +
    'TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | longest token gap ms | errors |' +
    (withLong ? ' long prompt tokens | its prefill ms | longest gap while it was read, ms |' : ''));
  console.log('|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|' + (withLong ? '--:|--:|--:|' : ''));
  for (const r of rows) {
    const l = r.long || {};
    if (l.error) console.error(`  long prompt failed: ${l.error}`);
    console.log(`| ${r.clients} | ${r.requests} | ${r.tokens} | ${fmt(r.wall)} | ${fmt(r.aggregate)} | ${fmt(r.decodeMean)} | ` +
      `${fmt(r.ttftP50)} | ${fmt(r.ttftP95)} | ${fmt(r.ttftP99)} | ${fmt(r.gapMax, 0)} | ${r.errors.length} |` +
      (withLong ? ` ${l.promptTokens ?? '–'} | ${fmt(l.prefillMs, 0)} | ${fmt(l.worstGap, 0)} |` : ''));
  }
  console.log(`\n${loadNote(load0)}`);
  const one = rows.find((r) => r.clients === 1);
  const four = rows.find((r) => r.clients === 4);
  if (one && four) {
    const scaling = four.aggregate / one.aggregate;
    console.log(`\nAggregate tokens/s, 4 clients / 1 client: ${scaling.toFixed(2)}x (required >= ${opt['min-scaling']}x)`);
    if (!(scaling >= Number(opt['min-scaling']))) failed = true;
  }
  const nErrors = rows.reduce((s, r) => s + r.errors.length + (r.long && r.long.error ? 1 : 0), 0);
  console.log(nErrors ? `\nFAILED: ${nErrors} request(s) failed` : '\nerrors: 0');
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
