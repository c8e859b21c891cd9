#!/usr/bin/env node
// Agent-style multi-turn benchmark of the prefix cache.
//
// An agent (Claude Code, an IDE assistant) sends one long system prompt (tool
// definitions, ~4000 tokens) and then a conversation that grows every turn: each request
// repeats everything before and appends the assistant's previous reply and a new user
// message. Without reuse every turn recomputes the whole prompt; with the prefix cache
// only the new tail is computed. Measured: time to first token (request sent -> first
// content delta) for each of 10 turns, in four runs, each against its own fresh server:
//
//   off      no reuse: the server runs with --no-prefix-cache, so every turn computes
//            its whole prompt.
//   ram      the default server (prefix cache in RAM).
//   disk-1   a server with --cache-dir DIR (empty), first pass of the conversation; it
//            is then stopped with SIGTERM, which saves the cache to DIR.
//   disk     a new server on the same DIR replays the same conversation: the first turn
//            finds its whole prefix on disk only.
//
// Every run sends the same conversation (the replies recorded in the ram run, so the
// prompts are identical token for token). max_tokens 16,
// temperature 0: time to first token dominates. Exit status 1 if the turn-10 time to
// first token of off is not at least --min-ratio (10) times that of ram and of disk.
//
//   node bench/agent_bench.mjs                               # synth-tiny-Q8_0, -c 8192
//   node bench/agent_bench.mjs --model /work/models/synth-1b-Q4_0.gguf --system-tokens 2000
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
    model: { type: 'string', default: path.resolve(root, '../shared/models/synth-tiny-Q8_0.gguf') },
    ctx: { type: 'string', default: '8192' },
    threads: { type: 'string', default: '2' },
    parallel: { type: 'string', default: '4' },
    turns: { type: 'string', default: '10' },
    'system-tokens': { type: 'string', default: '4000' },
    'max-tokens': { type: 'string', default: '16' },
    modes: { type: 'string', default: 'off,ram,disk' },
    'min-ratio': { type: 'string', default: '10' },
    'cache-dir': { type: 'string' },  // default: a fresh temporary directory, removed after
    'request-timeout': { type: 'string', default: '600' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 28)
    .map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
const TURNS = Number(opt.turns);
const MAX_TOKENS = Number(opt['max-tokens']);
const modes = new Set(opt.modes.split(','));

// ---------------------------------------------------------------- server

const running = new Set();

async function startServer(extraArgs = []) {
  const s = await startPensieve({
    bin: opt.bin, readyMs: 300000, log: (m) => console.error(`  ${m}`),
    args: ['-m', opt.model, '-c', opt.ctx, '-t', opt.threads, '--parallel', opt.parallel, '-q', ...extraArgs],
  });
  const server = {
    url: s.url,
    async stop() {
      running.delete(server);
      const r = await s.stop();
      if (r.code !== 0) throw new Error(`server exit ${JSON.stringify(r)}:\n${s.stderr()}`);
      return r;
    },
  };
  running.add(server);
  return server;
}

async function countTokens(url, content) {
  const res = await fetch(`${url}/tokenize`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content }),
  });
  if (res.status !== 200) throw new Error(`/tokenize: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()).tokens.length;
}

// ---------------------------------------------------------------- the agent's prompt

// Deterministic pseudo-random words (xorshift), so every run builds the same prompt.
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}
const WORDS = ('file path line content search pattern directory command output error test build run read write ' +
  'edit replace insert delete list show find match glob regex offset limit timeout shell process branch commit ' +
  'diff patch review summary result status code module function class method variable type value option flag ' +
  'default required optional string number boolean array object returns when only never always before after ' +
  'the a of to in for with on by from that this is are be it as or and not must should may').split(' ');
const pick = (r, xs) => xs[Math.floor(r() * xs.length)];
const sentence = (r, n) => {
  const w = Array.from({ length: n }, () => pick(r, WORDS));
  w[0] = w[0][0].toUpperCase() + w[0].slice(1);
  return `${w.join(' ')}.`;
};
const VERBS = ['read', 'write', 'edit', 'search', 'list', 'run', 'fetch', 'diff', 'apply', 'inspect', 'rename', 'format'];
const NOUNS = ['file', 'files', 'directory', 'tests', 'command', 'patch', 'symbol', 'branch', 'notebook', 'url', 'logs', 'issue'];

function tool(i) {
  const r = rng(1000 + i);
  const name = `${VERBS[i % VERBS.length]}_${NOUNS[(i * 5 + 3) % NOUNS.length]}${i >= 12 ? `_${i}` : ''}`;
  const params = {};
  const nParams = 2 + Math.floor(r() * 3);
  for (let p = 0; p < nParams; p++) {
    params[`${pick(r, WORDS)}_${pick(r, WORDS)}`] = {
      type: pick(r, ['string', 'integer', 'boolean', 'array']),
      description: sentence(r, 6 + Math.floor(r() * 8)),
    };
  }
  return `## ${name}\n${sentence(r, 12)} ${sentence(r, 10)} ${sentence(r, 14)}\n` +
    `Usage notes:\n- ${sentence(r, 9)}\n- ${sentence(r, 11)}\n- ${sentence(r, 8)}\n` +
    `Parameters (JSON Schema):\n${JSON.stringify({ type: 'object', properties: params, required: Object.keys(params).slice(0, 1) }, null, 2)}\n`;
}

const PREAMBLE = 'You are an interactive coding agent working in the user\'s repository. Use the tools ' +
  'below to read, search and change files and to run commands. Be concise. Before editing a file, ' +
  'read it. Never invent file contents. Report what you changed.\n\n# Tools\n\n';

async function buildSystemPrompt(url, target) {
  // Add tool definitions until the prompt reaches the target token count.
  let n = 8;
  let text = '';
  let tokens = 0;
  for (;;) {
    text = PREAMBLE + Array.from({ length: n }, (_, i) => tool(i)).join('\n');
    tokens = await countTokens(url, text);
    if (tokens >= target) break;
    n += Math.max(1, Math.floor(((target - tokens) / tokens) * n * 0.9));
  }
  return { text, tokens, tools: n };
}

// The user's messages: requests with pasted tool output, as an agent loop sends them.
function userMessage(turn) {
  const r = rng(77 + turn);
  const file = `src/${pick(r, ['engine', 'server', 'model', 'kernels'])}/${pick(r, WORDS)}_${pick(r, WORDS)}.cpp`;
  const lines = Array.from({ length: 6 }, (_, k) =>
    `${file}:${10 + k * 7 + turn}: ${pick(r, ['error', 'warning', 'note'])}: ${sentence(r, 7)}`);
  return `Turn ${turn}: run the tests again and fix ${file}. Output of the last command:\n` +
    `\`\`\`\n${lines.join('\n')}\n\`\`\`\n${sentence(r, 12)}`;
}

// ---------------------------------------------------------------- one request

async function chat(url, messages) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: 'default', stream: true, max_tokens: MAX_TOKENS, temperature: 0,
      stream_options: { include_usage: true }, messages,
    }),
    signal: AbortSignal.timeout(Number(opt['request-timeout']) * 1000),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const decoder = new TextDecoder();
  let buffer = '';
  let ttft = NaN;
  let finishAt = NaN;
  let text = '';
  let usage = null;
  let done = false;
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
          if (!text) ttft = performance.now() - t0;
          text += c.delta.content;
        }
        if (c.finish_reason && Number.isNaN(finishAt)) finishAt = performance.now() - t0;
      }
    }
  }
  const total = performance.now() - t0;
  if (!done || !usage) throw new Error('incomplete stream (no [DONE] or no usage)');
  // A reply that is empty (end of text first) has its first "token" at the finish.
  if (Number.isNaN(ttft)) ttft = Number.isNaN(finishAt) ? total : finishAt;
  return {
    ttft, total, text,
    prompt: usage.prompt_tokens,
    cached: (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0,
  };
}

// Runs the conversation; replies: the assistant messages to put back (null: use the
// model's own, recorded in the result).
async function conversation(url, system, replies) {
  const rows = [];
  const history = [];
  for (let t = 1; t <= TURNS; t++) {
    history.push({ role: 'user', content: userMessage(t) });
    const r = await chat(url, [{ role: 'system', content: system }, ...history]);
    rows.push(r);
    process.stderr.write(`    turn ${t}: prompt ${r.prompt}, cached ${r.cached}, TTFT ${r.ttft.toFixed(1)} ms\n`);
    const reply = replies ? replies[t - 1] : r.text;
    history.push({ role: 'assistant', content: reply });
  }
  return rows;
}

function dirStats(dir) {
  let files = 0;
  let bytes = 0;
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else { files++; bytes += fs.statSync(p).size; }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return { files, bytes };
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
  const t0 = Date.now();
  const load0 = os.loadavg()[0];
  const results = {};
  let system;
  let replies;

  // ram first: it also builds the system prompt and records the replies.
  console.error('ram: prefix cache in RAM (default server)');
  {
    const s = await startServer();
    try {
      system = await buildSystemPrompt(s.url, Number(opt['system-tokens']));
      console.error(`  system prompt: ${system.tokens} tokens (${system.tools} tool definitions, ${system.text.length} chars)`);
      results.ram = await conversation(s.url, system.text, null);
      replies = results.ram.map((r) => r.text);
    } finally {
      await s.stop();
    }
  }
  if (modes.has('off')) {
    console.error('off: no reuse (--no-prefix-cache)');
    const s = await startServer(['--no-prefix-cache']);
    try {
      results.off = await conversation(s.url, system.text, replies);
    } finally {
      await s.stop();
    }
  }
  let disk = null;
  if (modes.has('disk')) {
    const dir = opt['cache-dir'] || fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-agent-cache-'));
    try {
      console.error(`disk-1: --cache-dir ${dir}, first pass, then SIGTERM`);
      let s = await startServer(['--cache-dir', dir]);
      try {
        results['disk-1'] = await conversation(s.url, system.text, replies);
      } finally {
        await s.stop();
      }
      disk = dirStats(dir);
      console.error(`  cache dir after shutdown: ${disk.files} files, ${(disk.bytes / 1048576).toFixed(1)} MiB`);
      console.error('disk: a new server on the same --cache-dir replays the conversation');
      s = await startServer(['--cache-dir', dir]);
      try {
        results.disk = await conversation(s.url, system.text, replies);
      } finally {
        await s.stop();
      }
    } finally {
      if (!opt['cache-dir']) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  const cols = ['off', 'ram', 'disk-1', 'disk'].filter((m) => results[m]);
  console.log(`\nModel ${path.basename(opt.model)}, -c ${opt.ctx}, -t ${opt.threads}, --parallel ${opt.parallel}; ` +
    `system prompt ${system.tokens} tokens; max_tokens ${MAX_TOKENS}, temperature 0. ` +
    'TTFT in ms (cached prompt tokens).\n');
  console.log(`| turn | prompt tokens | ${cols.map((c) => `${c} TTFT ms (cached)`).join(' | ')} |`);
  console.log(`|--:|--:|${cols.map(() => '--:').join('|')}|`);
  for (let t = 0; t < TURNS; t++) {
    const cells = cols.map((c) => `${fmt(results[c][t].ttft)} (${results[c][t].cached})`);
    console.log(`| ${t + 1} | ${results.ram[t].prompt} | ${cells.join(' | ')} |`);
  }
  console.log('');
  if (disk) console.log(`Cache directory after the first disk pass: ${disk.files} files, ${(disk.bytes / 1048576).toFixed(1)} MiB.`);

  console.log(`${loadNote(load0)}\n`);
  let failed = false;
  const minRatio = Number(opt['min-ratio']);
  if (results.off) {
    const last = TURNS - 1;
    for (const m of ['ram', 'disk']) {
      if (!results[m]) continue;
      const ratio = results.off[last].ttft / results[m][last].ttft;
      const ok = ratio >= minRatio;
      if (!ok) failed = true;
      console.log(`Turn-${TURNS} TTFT off/${m}: ${fmt(results.off[last].ttft)} / ${fmt(results[m][last].ttft)} ms = ` +
        `${ratio.toFixed(1)}x (required >= ${minRatio}x) ${ok ? 'ok' : 'FAILED'}`);
    }
  }
  if (results.disk && !(results.disk[0].cached > 0)) {
    console.log('FAILED: after the restart, turn 1 reused nothing from the cache directory');
    failed = true;
  }
  console.log(`\nTotal benchmark time ${((Date.now() - t0) / 1000).toFixed(0)} s.`);
  process.exit(failed ? 1 : 0);
}

const cleanup = async () => {
  for (const s of [...running]) await s.stop().catch(() => {});
};
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, async () => { await cleanup(); process.exit(130); });
main().catch(async (e) => {
  console.error(e);
  await cleanup();
  process.exit(2);
});
