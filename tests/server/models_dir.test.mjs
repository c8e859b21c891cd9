// `pensieve serve --models-dir` as a real process driven by the official OpenAI and
// Anthropic clients: models.list shows the folder, each request reaches the model it
// names (loaded on demand; the first request's time to first token includes the load),
// an unknown name is the SDK's NotFoundError naming the known ones, a request's own
// keep_alive (as the other local servers accept it) unloads its model, SIGTERM exits 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

import { startServer } from '../lib/pensieve_server.mjs';
import { SHARED } from './suite_server.mjs';

const BIN = process.env.PENSIEVE_BIN || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../build/pensieve');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-models-'));
fs.symlinkSync(path.join(SHARED, 'models/stories260K.gguf'), path.join(dir, 'stories260K.gguf'));
fs.symlinkSync(path.join(SHARED, 'models/synth-tiny-Q4_0.gguf'), path.join(dir, 'synth-tiny-Q4_0.gguf'));
fs.mkdirSync(path.join(dir, 'arch'));
fs.symlinkSync(path.join(SHARED, 'models/arch/qwen2.gguf'), path.join(dir, 'arch/qwen2.gguf'));
fs.writeFileSync(path.join(dir, 'models.json'), JSON.stringify({ aliases: { 'claude-sonnet-4-5': 'qwen2' } }));

let server;
const openai = () => new OpenAI({ apiKey: 'none', baseURL: `${server.url}/v1`, maxRetries: 0 });
const anthropic = () => new Anthropic({ apiKey: 'none', baseURL: server.url, maxRetries: 0 });

before(async () => {
  server = await startServer({ bin: BIN, args: ['--models-dir', dir, '--max-models', '2', '-t', '1', '-c', '512', '-q'] });
});
after(async () => {
  const { code, signal } = await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(signal, null, server.stderr());
  assert.equal(code, 0, server.stderr());
});

const loaded = async () => {
  const list = await openai().models.list();
  return Object.fromEntries(list.data.map((m) => [m.id, m.loaded]));
};

describe('serve --models-dir', () => {
  test('models.list shows every model of the folder, none loaded yet', async () => {
    const list = await openai().models.list();
    assert.deepEqual(list.data.map((m) => m.id), ['qwen2', 'stories260K', 'synth-tiny-Q4_0']);
    const q = list.data.find((m) => m.id === 'synth-tiny-Q4_0');
    assert.equal(q.quantization, 'Q4_0');
    assert.equal(q.architecture, 'llama');
    assert.equal(q.size, fs.statSync(path.join(SHARED, 'models/synth-tiny-Q4_0.gguf')).size);
    assert.deepEqual(await loaded(), { qwen2: false, stories260K: false, 'synth-tiny-Q4_0': false });
  });

  test('a streamed request loads its model first; the next one finds it loaded', async () => {
    const ttft = async () => {
      const t0 = performance.now();
      const stream = await openai().chat.completions.create({
        model: 'synth-tiny-Q4_0', stream: true, max_tokens: 4, temperature: 0,
        messages: [{ role: 'user', content: 'Once upon a time' }],
      });
      let first = 0;
      for await (const chunk of stream) if (!first && chunk.choices[0]?.delta?.content) first = performance.now() - t0;
      return first;
    };
    const cold = await ttft();
    const warm = await ttft();
    console.log(`time to first token: ${cold.toFixed(1)} ms loading synth-tiny-Q4_0 (13.7 MB), ${warm.toFixed(1)} ms loaded`);
    assert.ok(cold > 0 && warm > 0);
    assert.equal((await loaded())['synth-tiny-Q4_0'], true);
  });

  test('each client reaches the model it names; an alias maps a client\'s usual name', async () => {
    const a = await openai().chat.completions.create({ model: 'stories260K', max_tokens: 6, temperature: 0,
      messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(a.model, 'stories260K');
    const m = await anthropic().messages.create({ model: 'claude-sonnet-4-5', max_tokens: 6,
      messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.model, 'qwen2');
    assert.equal(m.type, 'message');
    // --max-models 2: the least recently used (synth-tiny-Q4_0) made room for qwen2.
    assert.deepEqual(await loaded(), { qwen2: true, stories260K: true, 'synth-tiny-Q4_0': false });
  });

  test('an unknown model is a NotFoundError naming the known ones', async () => {
    await assert.rejects(
      openai().chat.completions.create({ model: 'gpt-4o', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }),
      (e) => e instanceof OpenAI.NotFoundError && /"qwen2", "stories260K", "synth-tiny-Q4_0"/.test(e.message));
  });

  test('keep_alive 0 unloads the model when its request ends', async () => {
    await openai().chat.completions.create({ model: 'stories260K', max_tokens: 4, keep_alive: 0,
      messages: [{ role: 'user', content: 'hi' }] });
    const end = Date.now() + 3000;
    while ((await loaded()).stories260K && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.equal((await loaded()).stories260K, false);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^pensieve_model_unloads_total [1-9]/m);
  });
});
