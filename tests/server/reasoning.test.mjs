// Reasoning through the official clients: `pensieve serve` with stories260K and DeepSeek
// R1's chat template (--chat-template-file), whose generation prompt opens a <think>
// block. The OpenAI SDK gets `reasoning_content` (whole and streamed); the Anthropic SDK
// gets `thinking` blocks (whole, and through its MessageStream's thinking events), and
// a thinking block sent back in the history is accepted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { MODEL_ID, SHARED, serveDuringTests } from './suite_server.mjs';

const TEMPLATE = path.join(SHARED, 'templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja');
const served = serveDuringTests({ args: ['--chat-template-file', TEMPLATE] });
const { openai, anthropic } = served;

// The reply the grammar (a llama.cpp extension the server takes) makes the model write:
// the end of its reasoning, then the answer.
const GRAMMAR = 'root ::= "Seven times thirteen.\\n</think>\\n\\nNot prime."';

describe('OpenAI SDK: reasoning_content', () => {
  const params = {
    model: MODEL_ID,
    messages: [{ role: 'user', content: 'Is 91 prime?' }],
    max_tokens: 64,
    temperature: 0,
    grammar: GRAMMAR,
  };

  test('whole', async () => {
    const r = await openai().chat.completions.create(params);
    assert.equal(r.choices[0].message.reasoning_content, 'Seven times thirteen.');
    assert.equal(r.choices[0].message.content, 'Not prime.');
  });

  test('streamed as delta.reasoning_content, then delta.content', async () => {
    const stream = await openai().chat.completions.create({ ...params, stream: true });
    let reasoning = '';
    let content = '';
    let sawContentBeforeReasoningEnded = false;
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta ?? {};
      if (d.reasoning_content) {
        reasoning += d.reasoning_content;
        if (content) sawContentBeforeReasoningEnded = true;
      }
      content += d.content ?? '';
    }
    assert.equal(reasoning, 'Seven times thirteen.');
    assert.equal(content, 'Not prime.');
    assert.equal(sawContentBeforeReasoningEnded, false);
  });

  test('reasoning_content sent back in the history is accepted', async () => {
    const r = await openai().chat.completions.create({
      model: MODEL_ID, max_tokens: 4, temperature: 0,
      messages: [
        { role: 'user', content: 'Is 91 prime?' },
        { role: 'assistant', content: 'Not prime.', reasoning_content: 'Seven times thirteen.' },
        { role: 'user', content: 'And 97?' },
      ],
    });
    assert.equal(typeof r.choices[0].message.reasoning_content, 'string');
  });
});

describe('Anthropic SDK: thinking blocks', () => {
  const params = {
    model: 'pensieve-local',
    max_tokens: 16,
    temperature: 0,
    messages: [{ role: 'user', content: 'Once upon a time' }],
  };

  test('whole: a thinking block, then the (empty) text', async () => {
    const m = await anthropic().messages.create(params);
    assert.equal(m.content[0].type, 'thinking');
    assert.ok(m.content[0].thinking.length > 0);
    assert.equal(m.content[0].signature, '');
    assert.equal(m.content.at(-1).type, 'text');
  });

  test('MessageStream: thinking events add up to the same block', async () => {
    const whole = await anthropic().messages.create(params);
    const stream = anthropic().messages.stream(params);
    let thinking = '';
    stream.on('thinking', (delta) => { thinking += delta; });
    const final = await stream.finalMessage();
    assert.equal(thinking, whole.content[0].thinking);
    assert.deepEqual(final.content.map((b) => b.type), whole.content.map((b) => b.type));
    assert.equal(final.content[0].thinking, whole.content[0].thinking);
  });

  test('a thinking block in the history is accepted', async () => {
    const m = await anthropic().messages.create({
      ...params,
      max_tokens: 4,
      messages: [
        { role: 'user', content: 'Is 91 prime?' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 'Seven times thirteen.', signature: '' }, { type: 'text', text: 'No.' }] },
        { role: 'user', content: 'And 97?' },
      ],
    });
    assert.equal(m.type, 'message');
  });
});
