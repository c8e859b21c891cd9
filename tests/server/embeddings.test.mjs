// `pensieve serve` with an embedding model (models/arch/bert.gguf) driven by the official
// OpenAI SDK: embeddings.create as clients call it (the SDK asks for base64 and decodes
// it), float output, batches; chat on an embedding model is a clean BadRequestError.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import OpenAI from 'openai';

import { SHARED, serveDuringTests } from './suite_server.mjs';

const served = serveDuringTests({ model: 'arch/bert.gguf', ctx: 512 });
const { openai } = served;
const ref = JSON.parse(fs.readFileSync(path.join(SHARED, 'reference/arch/bert.json'), 'utf8'));

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const cosine = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) / (norm(a) * norm(b));

describe('OpenAI SDK embeddings', () => {
  test('embeddings.create (SDK default: base64) matches the reference, normalised', async () => {
    const c = ref.cases[0];
    const r = await openai().embeddings.create({ model: 'bert', input: c.prompt });
    assert.equal(r.object, 'list');
    assert.equal(r.data.length, 1);
    const v = r.data[0].embedding;
    assert.equal(v.length, 64);
    assert.ok(Math.abs(norm(v) - 1) < 1e-5, `norm ${norm(v)}`);
    assert.ok(cosine(v, c.embedding) >= 0.9999, `cosine ${cosine(v, c.embedding)}`);
    assert.equal(r.usage.prompt_tokens, c.prompt_tokens.length);
  });

  test('float format and a batch of texts agree with base64 and single texts', async () => {
    const texts = ref.cases.map((c) => c.prompt);
    const batch = await openai().embeddings.create({ model: 'bert', input: texts, encoding_format: 'float' });
    assert.deepEqual(batch.data.map((d) => d.index), texts.map((_, i) => i));
    for (let i = 0; i < texts.length; i++) {
      const one = await openai().embeddings.create({ model: 'bert', input: texts[i] });
      const a = batch.data[i].embedding, b = one.data[0].embedding;
      assert.ok(a.every((x, k) => Math.abs(x - b[k]) < 1e-6), `input ${i}`);
    }
  });

  test('chat on an embedding model is a BadRequestError', async () => {
    await assert.rejects(
      openai().chat.completions.create({ model: 'bert', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
      (e) => e instanceof OpenAI.BadRequestError && /embeddings only/.test(e.message),
    );
  });
});
