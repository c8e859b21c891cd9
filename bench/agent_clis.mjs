#!/usr/bin/env node
// Cold and warm times of the real coding-agent CLIs (Claude Code, Codex CLI, opencode)
// against `pensieve serve` on a ~1B model: what a user waits for the first command of a
// session, the next one, the first one after a server restart, and the first one on a
// fresh server warmed from a recorded request file. For each CLI:
//
//   cold      a new server (empty --cache-dir): the CLI's system prompt and tools are
//             computed from scratch.
//   warm      the same command again on that server: its prefix cache (RAM) serves it.
//   restart   the server is stopped (SIGTERM saves the cache to the dir) and a new one on
//             the same dir runs the command again: the prefix comes from disk.
//   warmed    a new server with no cache dir, started with --warm-cache FILE, FILE being
//             what the cold server recorded (--record-requests): the warm-up runs before
//             the server says it is ready, so the user's first command is a cache hit.
//
// Printed per run: seconds for the whole CLI command, requests it made, prompt tokens
// computed and served from the cache. Each command asks "Say hello"; the replies are capped
// at 16 tokens (the model is random: the prompt is the cost being measured).
//
//   tests/agents/run.sh --help >/dev/null   # installs the pinned CLIs once (npm)
//   node bench/agent_clis.mjs --model synth-1b-Q4_0.gguf [--ctx 32768] [--only claude,codex]
//                             [--stages cold,warm,restart,warmed]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { startServer } from '../tests/lib/pensieve_server.mjs';
import { claudeCode, codex, opencode, runCli, requestsSeen, clisInstalled } from '../tests/agents/clis.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const { values: opt } = parseArgs({
  options: {
    bin: { type: 'string', default: process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve') },
    model: { type: 'string' },
    ctx: { type: 'string', default: '32768' },
    threads: { type: 'string', default: '2' },
    only: { type: 'string', default: 'claude,codex,opencode' },
    // warmed replays every recorded request at start-up: as long as cold again.
    stages: { type: 'string', default: 'cold,warm,restart,warmed' },
  },
});
if (!opt.model) { console.error('usage: node bench/agent_clis.mjs --model FILE.gguf [--ctx N] [--only claude,codex,opencode]'); process.exit(2); }
if (!clisInstalled()) { console.error('the CLIs are not installed: run tests/agents/run.sh once (it runs npm install)'); process.exit(2); }

const modelName = path.basename(opt.model, '.gguf');
const ctx = Number(opt.ctx);
const prompt = 'Say hello';
const stages = new Set(opt.stages.split(','));
const clis = {
  claude: { label: 'Claude Code (`claude -p`)', make: (dir, url) => claudeCode(dir, { url, prompt, maxOutput: 16 }), serverArgs: [] },
  codex: { label: 'Codex (`codex exec`)', make: (dir, url) => codex(dir, { url, prompt, model: modelName }), serverArgs: ['-n', '16'] },
  opencode: { label: 'opencode (`opencode run`)', make: (dir, url) => opencode(dir, { url, prompt, model: modelName, context: ctx, maxOutput: 16 }), serverArgs: [] },
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-agent-bench-'));
const log = (s) => console.error(`[agent_clis] ${s}`);

async function serve(extra) {
  return startServer({
    bin: opt.bin, readyMs: 30000, killAfterMs: 600000, log,
    args: ['-m', opt.model, '-t', opt.threads, '--parallel', '2', '-c', opt.ctx, ...extra],
  });
}

// One CLI command against `server`; returns its time and what the server computed for it.
async function measure(server, cli, what) {
  const before = { prompt: await server.metric('pensieve_prompt_tokens_total'), cached: await server.metric('pensieve_cached_prompt_tokens_total') };
  const n0 = requestsSeen(server.stderr()).length;
  const r = await runCli(cli, { timeoutMs: 3600000 });
  const reqs = requestsSeen(server.stderr()).slice(n0).filter((q) => q.path.startsWith(cli.api));
  const row = {
    what, s: r.ms / 1000, requests: reqs.length, not200: reqs.filter((q) => q.status !== 200).length,
    computed: (await server.metric('pensieve_prompt_tokens_total')) - before.prompt,
    cached: (await server.metric('pensieve_cached_prompt_tokens_total')) - before.cached,
    exit: r.signal || r.code,
  };
  log(`${what}: ${row.s.toFixed(1)} s, exit ${row.exit}, ${row.requests} requests (${row.not200} not 200), ` +
    `prompt tokens computed ${row.computed}, from the cache ${row.cached}`);
  if (row.requests === 0) log(`no request reached the server; CLI output:\n${r.out}\n${r.err}`);
  return row;
}

async function benchOne(key) {
  const { make, serverArgs } = clis[key];
  const cacheDir = path.join(tmp, key, 'cache');
  const record = path.join(tmp, key, 'requests.jsonl');
  fs.mkdirSync(cacheDir, { recursive: true });
  const rows = [];

  let server = await serve([...serverArgs, '--cache-dir', cacheDir, '--record-requests', record]);
  const cli = make(path.join(tmp, key, 'cli'), server.url);
  rows.push(await measure(server, cli, 'cold'));
  if (stages.has('warm')) rows.push(await measure(server, cli, 'warm'));
  await server.stop();

  if (stages.has('restart')) {
    server = await serve([...serverArgs, '--cache-dir', cacheDir]);
    rows.push(await measure(server, make(path.join(tmp, key, 'cli'), server.url), 'restart'));
    await server.stop();
  }
  if (!stages.has('warmed')) return rows;

  const t0 = performance.now();
  server = await serve([...serverArgs, '--warm-cache', record]);
  // /health says 200 once the model is loaded; the warm-up ends with the "serving" line.
  while (!/^pensieve: serving /m.test(server.stderr())) await new Promise((r) => setTimeout(r, 200));
  const warmup = (performance.now() - t0) / 1000;
  const row = await measure(server, make(path.join(tmp, key, 'cli'), server.url), 'warmed');
  row.note = `server ready after ${warmup.toFixed(0)} s of warm-up`;
  rows.push(row);
  await server.stop();
  return rows;
}

const results = {};
try {
  for (const key of opt.only.split(',')) results[key] = await benchOne(key);
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}

console.log(`| CLI | run | time (s) | requests | prompt tokens computed | from the cache | cold / this |`);
console.log(`|---|---|---:|---:|---:|---:|---:|`);
for (const [key, rows] of Object.entries(results)) {
  for (const r of rows) {
    const bad = r.not200 ? ` (${r.not200} not 200)` : '';
    console.log(`| ${r.what === 'cold' ? clis[key].label : ''} | ${r.what}${r.note ? ` (${r.note})` : ''} | ${r.s.toFixed(1)} | ` +
      `${r.requests}${bad} | ${r.computed} | ${r.cached} | ${(rows[0].s / r.s).toFixed(1)}x |`);
  }
}
