// `pensieve serve` driven by the official OpenAI and Anthropic SDKs: if these clients
// work unchanged, so do the tools built on them.
//
// Starts $PENSIEVE_BIN (default: build/pensieve) on a free port with stories260K and an
// API key, runs the tests, then stops it with SIGTERM and checks it exits cleanly.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

import { MODEL_ID, serveDuringTests } from './suite_server.mjs';

const KEY = 'test-key-123';
const served = serveDuringTests({ apiKey: KEY, args: ['--parallel', '2'] });
const { openai, anthropic } = served;

describe('OpenAI SDK', () => {
  test('models.list', async () => {
    const ids = [];
    for await (const m of openai().models.list()) ids.push(m.id);
    assert.deepEqual(ids, [MODEL_ID]);
  });

  test('chat completion, whole and streamed, agree at temperature 0', async () => {
    const params = {
      model: MODEL_ID,
      messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Once upon a time' }],
      max_tokens: 12,
      temperature: 0,
    };
    const whole = await openai().chat.completions.create(params);
    assert.equal(whole.object, 'chat.completion');
    assert.equal(whole.choices[0].message.role, 'assistant');
    assert.equal(whole.choices[0].finish_reason, 'length');
    assert.equal(whole.usage.completion_tokens, 12);
    const text = whole.choices[0].message.content;
    assert.ok(text.length > 0);

    const stream = await openai().chat.completions.create({
      ...params, stream: true, stream_options: { include_usage: true },
    });
    let streamed = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      if (!chunk.choices.length) continue;
      streamed += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    assert.equal(streamed, text);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 12);
  });

  test('chat with tools and a tool result in the conversation', async () => {
    const r = await openai().chat.completions.create({
      model: MODEL_ID,
      max_tokens: 4,
      temperature: 0,
      tools: [{
        type: 'function',
        function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
      }],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        {
          role: 'assistant', content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      ],
    });
    assert.ok(['length', 'stop', 'tool_calls'].includes(r.choices[0].finish_reason));
  });

  test('tool call round trip: tool_choice required makes the model call, the result goes back', async () => {
    const tools = [{
      type: 'function',
      function: {
        name: 'get_weather',
        parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] },
      },
    }];
    const messages = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await openai().chat.completions.create({
      model: MODEL_ID, max_tokens: 60, temperature: 0, tools, tool_choice: 'required', messages,
    });
    const msg = first.choices[0].message;
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    assert.equal(msg.tool_calls.length, 1);
    const call = msg.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.function.arguments).city, 'string');

    // Streamed, the same call arrives as tool_calls deltas.
    const stream = await openai().chat.completions.create({
      model: MODEL_ID, max_tokens: 60, temperature: 0, tools, tool_choice: 'required', messages, stream: true,
    });
    let args = '';
    let name = '';
    for await (const chunk of stream) {
      const tc = chunk.choices[0]?.delta?.tool_calls?.[0];
      if (tc?.function?.name) name += tc.function.name;
      if (tc?.function?.arguments) args += tc.function.arguments;
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(args), JSON.parse(call.function.arguments));

    const second = await openai().chat.completions.create({
      model: MODEL_ID, max_tokens: 8, temperature: 0, tools,
      messages: [...messages, msg, { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' }],
    });
    assert.equal(typeof second.choices[0].message.content, 'string');
  });

  test('completions, whole and streamed', async () => {
    const whole = await openai().completions.create({ model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
    assert.equal(whole.object, 'text_completion');
    const text = whole.choices[0].text;
    assert.ok(text.length > 0);
    const stream = await openai().completions.create({
      model: MODEL_ID, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stream: true,
    });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
    assert.equal(streamed, text);
  });

  test('a wrong key is an AuthenticationError', async () => {
    const bad = new OpenAI({ apiKey: 'wrong', baseURL: `${served.url}/v1`, maxRetries: 0 });
    await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  });

  test('a bad parameter is a BadRequestError naming it', async () => {
    await assert.rejects(
      openai().chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], temperature: 'hot' }),
      (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /temperature/.test(e.message),
    );
    await assert.rejects(
      openai().chat.completions.create({ model: MODEL_ID, messages: [{ role: 'wizard', content: 'hi' }] }),
      (e) => e instanceof OpenAI.BadRequestError,
    );
  });

  test('prompt plus max_tokens past the context is a BadRequestError', async () => {
    await assert.rejects(
      openai().chat.completions.create({ model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 100000 }),
      (e) => e instanceof OpenAI.BadRequestError && /context/.test(e.message),
    );
  });

  test('embeddings are refused cleanly', async () => {
    await assert.rejects(openai().embeddings.create({ model: MODEL_ID, input: 'x' }), (e) => e instanceof OpenAI.APIError && e.status === 400);
  });
});

describe('Anthropic SDK', () => {
  const base = {
    model: 'pensieve-local',
    max_tokens: 12,
    temperature: 0,
    system: 'You tell stories.',
    messages: [{ role: 'user', content: 'Once upon a time' }],
  };

  test('messages.create', async () => {
    const m = await anthropic().messages.create(base);
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.content[0].type, 'text');
    assert.ok(m.content[0].text.length > 0);
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.usage.output_tokens, 12);
    assert.ok(m.usage.input_tokens > 0);
  });

  test('messages.stream and finalMessage agree with the whole reply', async () => {
    const whole = await anthropic().messages.create(base);
    const stream = anthropic().messages.stream(base);
    let texts = '';
    stream.on('text', (t) => { texts += t; });
    const final = await stream.finalMessage();
    assert.equal(final.content[0].text, whole.content[0].text);
    assert.equal(texts, whole.content[0].text);
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, 12);
  });

  test('raw stream event order', async () => {
    const stream = await anthropic().messages.create({ ...base, stream: true });
    const kinds = [];
    for await (const ev of stream) if (ev.type !== 'ping' && kinds.at(-1) !== ev.type) kinds.push(ev.type);
    assert.deepEqual(kinds, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop',
      'message_delta', 'message_stop']);
  });

  test('countTokens matches usage.input_tokens', async () => {
    const { input_tokens } = await anthropic().messages.countTokens({
      model: base.model, system: base.system, messages: base.messages,
    });
    const m = await anthropic().messages.create({ ...base, max_tokens: 1 });
    const u = m.usage;
    assert.equal(input_tokens, u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens);
  });

  test('usage: input_tokens leaves out cached tokens (whole and streamed)', async () => {
    const long = { ...base, max_tokens: 2, messages: [{ role: 'user', content: 'A long prompt for the cache. '.repeat(20) }] };
    const { input_tokens: whole } = await anthropic().messages.countTokens({
      model: long.model, system: long.system, messages: long.messages,
    });
    await anthropic().messages.create(long);   // now its prefix is cached
    const parts = (u) => u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
    const again = await anthropic().messages.create(long);
    assert.ok(again.usage.cache_read_input_tokens > whole / 2, JSON.stringify(again.usage));
    assert.equal(parts(again.usage), whole);
    const final = await anthropic().messages.stream(long).finalMessage();
    assert.ok(final.usage.cache_read_input_tokens > whole / 2, JSON.stringify(final.usage));
    assert.equal(parts(final.usage), whole);
  });

  test('tool_use and tool_result blocks go in', async () => {
    const m = await anthropic().messages.create({
      ...base,
      max_tokens: 4,
      tools: [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: 'sunny' }] },
      ],
    });
    assert.equal(m.type, 'message');
    assert.ok(['max_tokens', 'end_turn', 'tool_use'].includes(m.stop_reason));
  });

  test('tool_use round trip: tool_choice any makes the model call, tool_result goes back', async () => {
    const tools = [{ name: 'get_weather', description: 'Weather for a city',
      input_schema: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } }];
    const messages = [{ role: 'user', content: 'Weather in Paris?' }];
    const m = await anthropic().messages.create({ ...base, max_tokens: 60, tools, tool_choice: { type: 'any' }, messages });
    assert.equal(m.stop_reason, 'tool_use');
    const use = m.content.find((b) => b.type === 'tool_use');
    assert.ok(use, JSON.stringify(m.content));
    assert.equal(use.name, 'get_weather');
    assert.equal(typeof use.input.city, 'string');
    const next = await anthropic().messages.create({
      ...base, max_tokens: 8, tools,
      messages: [...messages, { role: 'assistant', content: m.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] }],
    });
    assert.equal(next.type, 'message');
  });

  test('a wrong key is an AuthenticationError', async () => {
    const bad = new Anthropic({ apiKey: 'wrong', baseURL: served.url, maxRetries: 0 });
    await assert.rejects(bad.messages.create(base), (e) => e instanceof Anthropic.AuthenticationError && e.status === 401);
  });

  test('missing max_tokens is a BadRequestError', async () => {
    const { max_tokens, ...noMax } = base;
    // The SDK's types require max_tokens; send the request anyway, as a raw call would.
    await assert.rejects(anthropic().messages.create(noMax), (e) => e instanceof Anthropic.BadRequestError && /max_tokens/.test(e.message));
  });
});

describe('HTTP', () => {
  test('health needs no key; metrics do', async () => {
    assert.equal((await fetch(`${served.url}/health`)).status, 200);
    assert.equal((await fetch(`${served.url}/metrics`)).status, 401);
    const m = await fetch(`${served.url}/metrics`, { headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(m.status, 200);
    assert.match(await m.text(), /pensieve_generated_tokens_total \d+/);
  });
});
