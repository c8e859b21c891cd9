// The real coding-agent CLIs, unchanged, against `pensieve serve`: Claude Code (Anthropic
// Messages), Codex CLI (OpenAI Responses) and opencode (OpenAI chat completions). The model
// is a random-weight LLaMA (synth_gguf.py --preset tiny, LLaMA vocabulary, 131072 context)
// written at test time, so the replies are noise: the tests assert the protocol (every
// request the CLI makes is answered 200, the CLI reads the reply and ends as it does for a
// reply it cannot use), and for Claude Code that the prefix cache serves a repeated command.
// Each CLI runs with its own temporary HOME and config so no state leaks in or out.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServer } from '../lib/pensieve_server.mjs';
import { claudeCode, codex, opencode, runCli, requestsSeen } from './clis.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve');
const SHARED = process.env.PENSIEVE_SHARED || path.resolve(root, '../shared');
const PYTHON = process.env.PYTHON || '/usr/bin/python3';

let tmp, model;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-agents-'));
  model = path.join(tmp, 'synth-tiny-131k.gguf');
  execFileSync(PYTHON, [path.join(SHARED, 'tools/synth_gguf.py'), '--vocab',
    path.join(SHARED, 'vocab/ggml-vocab-llama-spm.gguf'), '--preset', 'tiny', '--ctx', '131072', '-o', model],
  { stdio: 'ignore' });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// A fresh directory under the test's temporary one.
function dir(...parts) {
  const d = path.join(tmp, ...parts);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function assertAll200(server, pathPrefix) {
  const reqs = requestsSeen(server.stderr());
  const api = reqs.filter((r) => r.path.startsWith(pathPrefix));
  assert.ok(api.length > 0, `no ${pathPrefix} request reached the server; log:\n${server.stderr()}`);
  const bad = reqs.filter((r) => r.path !== '/health' && r.status !== 200);  // /health: 503 while loading
  assert.deepEqual(bad, [], `requests not answered 200; log:\n${server.stderr()}`);
  return api.length;
}

async function serve(args) {
  return startServer({ bin: BIN, args: ['-m', model, '-t', '2', '--parallel', '2', '-c', '32768', ...args] });
}

async function stopCleanly(server) {
  const { code, signal } = await server.stop();
  assert.equal(signal, null, `server died by ${signal}`);
  assert.equal(code, 0, `server exit code ${code}`);
}

const show = (r) => `exit ${r.code} (${r.signal}) after ${(r.ms / 1000).toFixed(1)} s\nstdout:\n${r.out}\nstderr:\n${r.err}`;

test('Claude Code: claude -p through /v1/messages, and the repeated command comes from the prefix cache', async () => {
  const server = await serve(['--cache-dir', dir('claude-cache')]);
  try {
    const cli = claudeCode(dir('claude'), { url: server.url, prompt: 'Say hello', maxOutput: 16 });
    const runs = [];
    for (let i = 0; i < 2; ++i) {
      const prompt0 = await server.metric('pensieve_prompt_tokens_total');
      const cached0 = await server.metric('pensieve_cached_prompt_tokens_total');
      const r = await runCli(cli);
      const prompt = (await server.metric('pensieve_prompt_tokens_total')) - prompt0;
      const cached = (await server.metric('pensieve_cached_prompt_tokens_total')) - cached0;
      runs.push({ ...r, prompt, cached });
      console.log(`claude -p run ${i + 1}: ${(r.ms / 1000).toFixed(1)} s, exit ${r.code}, ` +
        `prompt tokens computed ${prompt}, from the cache ${cached}`);
      assert.equal(r.signal, null, show(r));
      // The noise reply runs into CLAUDE_CODE_MAX_OUTPUT_TOKENS: Claude Code parsed it,
      // says so and exits 1. Any HTTP error would read "API Error: 4xx ...".
      assert.ok(r.code === 0 || /exceeded the 16 output token maximum/.test(r.out + r.err), show(r));
      assert.doesNotMatch(r.out + r.err, /API Error: \d{3}|Connection error/, show(r));
    }
    const n = assertAll200(server, '/v1/messages');
    console.log(`claude: ${n} /v1/messages requests, all 200; second command ${(runs[0].ms / runs[1].ms).toFixed(1)}x faster`);
    // Timing on a shared CI machine is noisy: the cache is asserted in tokens, the times printed.
    const total = runs[1].prompt + runs[1].cached;
    assert.ok(total > 5000, `the second command sent ${total} prompt tokens`);
    assert.ok(runs[1].cached >= 0.8 * total,
      `the prefix cache served ${runs[1].cached} of ${total} prompt tokens of the second command`);
  } finally {
    await stopCleanly(server);
  }
});

test('Codex CLI: codex exec through /v1/responses', async () => {
  // Codex sends no max_output_tokens: the server's -n caps the noise replies.
  const server = await serve(['-n', '16']);
  try {
    const r = await runCli(codex(dir('codex'), { url: server.url, prompt: 'Say hello', model: 'synth-tiny' }));
    console.log(`codex exec: ${(r.ms / 1000).toFixed(1)} s, exit ${r.code}`);
    assert.equal(r.signal, null, show(r));
    // The noise reply is cut by the server's -n 16: Codex reads the response.incomplete
    // event, says so, and ends the turn. An HTTP error would be an ERROR with its body.
    assert.match(r.out + r.err, /Incomplete response returned, reason: max_output_tokens/, show(r));
    assert.doesNotMatch(r.out + r.err, /ERROR: \{|error sending request|unexpected status/i, show(r));
    assert.ok(r.code === 0 || r.code === 1, show(r));  // 1: the turn ended incomplete
    const n = assertAll200(server, '/v1/responses');
    console.log(`codex: ${n} /v1/responses requests, all 200`);
  } finally {
    await stopCleanly(server);
  }
});

test('opencode: opencode run through /v1/chat/completions', async () => {
  const server = await serve([]);
  try {
    const r = await runCli(opencode(dir('opencode'), {
      url: server.url, prompt: 'Say hello', model: 'synth-tiny', context: 131072, maxOutput: 16,
    }));
    console.log(`opencode run: ${(r.ms / 1000).toFixed(1)} s, exit ${r.code}`);
    assert.equal(r.signal, null, show(r));
    assert.equal(r.code, 0, show(r));
    assert.ok(r.out.trim().length > 0, show(r));
    const n = assertAll200(server, '/v1/chat/completions');
    console.log(`opencode: ${n} /v1/chat/completions requests, all 200`);
  } finally {
    await stopCleanly(server);
  }
});
