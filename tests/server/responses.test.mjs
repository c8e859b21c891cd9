// POST /v1/responses driven by the official OpenAI SDK (client.responses.create and
// client.responses.stream), as Codex CLI and other Responses clients use it: whole and
// streamed replies, a tool call round trip, and previous_response_id follow-ups.
// Runs on stories260K in about 2 s.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { MODEL_ID, serveDuringTests } from './suite_server.mjs';

const served = serveDuringTests({ args: ['--parallel', '2'] });
const openai = () => served.openai();

const tools = [{
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] },
}];

describe('OpenAI SDK: responses', () => {
  test('whole and streamed replies agree at temperature 0', async () => {
    const params = { model: MODEL_ID, instructions: 'You tell stories.', input: 'Once upon a time', max_output_tokens: 10, temperature: 0 };
    const whole = await openai().responses.create(params);
    assert.equal(whole.object, 'response');
    assert.match(whole.id, /^resp_/);
    assert.equal(whole.status, 'incomplete');
    assert.equal(whole.incomplete_details.reason, 'max_output_tokens');
    assert.equal(whole.instructions, 'You tell stories.');
    assert.equal(whole.usage.output_tokens, 10);
    assert.equal(whole.usage.total_tokens, whole.usage.input_tokens + 10);
    assert.equal(typeof whole.usage.input_tokens_details.cached_tokens, 'number');
    assert.equal(whole.output.length, 1);
    assert.equal(whole.output[0].type, 'message');
    assert.equal(whole.output[0].content[0].type, 'output_text');
    assert.ok(whole.output_text.length > 0);  // the SDK's joined text

    // Raw events: the documented order, numbered from 0.
    const events = [];
    for await (const ev of await openai().responses.create({ ...params, stream: true })) events.push(ev);
    events.forEach((ev, i) => assert.equal(ev.sequence_number, i));
    const kinds = events.map((ev) => ev.type).filter((t, i, all) => t !== all[i - 1]);
    assert.deepEqual(kinds, [
      'response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
      'response.output_text.delta', 'response.output_text.done', 'response.content_part.done',
      'response.output_item.done', 'response.incomplete',
    ]);
    const deltas = events.filter((ev) => ev.type === 'response.output_text.delta').map((ev) => ev.delta).join('');
    assert.equal(deltas, whole.output_text);

    // The SDK's stream helper accumulates the events into the same response.
    const stream = openai().responses.stream(params);
    const final = await stream.finalResponse();
    assert.equal(final.output_text, whole.output_text);
    assert.equal(final.status, 'incomplete');
  });

  test('tool call round trip: function_call, then its function_call_output', async () => {
    const input = [{ role: 'user', content: 'Weather in Paris?' }];
    const first = await openai().responses.create({
      model: MODEL_ID, input, tools, tool_choice: 'required', max_output_tokens: 60, temperature: 0,
    });
    assert.equal(first.status, 'completed');
    const call = first.output.find((item) => item.type === 'function_call');
    assert.ok(call, JSON.stringify(first.output));
    assert.equal(call.name, 'get_weather');
    assert.match(call.call_id, /\S/);
    assert.equal(typeof JSON.parse(call.arguments).city, 'string');

    // Streamed, the same call arrives as function_call_arguments events.
    const events = [];
    for await (const ev of await openai().responses.create({
      model: MODEL_ID, input, tools, tool_choice: 'required', max_output_tokens: 60, temperature: 0, stream: true,
    })) events.push(ev);
    const done = events.find((ev) => ev.type === 'response.function_call_arguments.done');
    assert.deepEqual(JSON.parse(done.arguments), JSON.parse(call.arguments));
    assert.equal(events.at(-1).type, 'response.completed');
    assert.equal(events.at(-1).response.output.at(-1).type, 'function_call');

    // The result goes back as input items, without a stored response (store: false).
    const second = await openai().responses.create({
      model: MODEL_ID, tools, max_output_tokens: 8, temperature: 0, store: false,
      input: [...input, call, { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 C' }],
    });
    assert.equal(second.output.at(-1).type === 'message' || second.output.at(-1).type === 'function_call', true);
    assert.ok(second.usage.input_tokens > first.usage.input_tokens);
    await assert.rejects(openai().responses.retrieve(second.id), (e) => e.status === 404);

    // Or after previous_response_id: only the output needs sending.
    const third = await openai().responses.create({
      model: MODEL_ID, tools, max_output_tokens: 8, temperature: 0, previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21 C' }],
    });
    assert.equal(third.usage.input_tokens, second.usage.input_tokens);
  });

  test('previous_response_id continues a stored conversation', async () => {
    const first = await openai().responses.create({ model: MODEL_ID, input: 'Once upon a time', max_output_tokens: 6, temperature: 0 });
    const follow = await openai().responses.create({
      model: MODEL_ID, input: 'Tell me more.', previous_response_id: first.id, max_output_tokens: 6, temperature: 0,
    });
    assert.equal(follow.previous_response_id, first.id);
    // The same conversation sent in full gives the same prompt.
    const full = await openai().responses.create({
      model: MODEL_ID, max_output_tokens: 6, temperature: 0,
      input: [{ role: 'user', content: 'Once upon a time' }, ...first.output, { role: 'user', content: 'Tell me more.' }],
    });
    assert.equal(follow.usage.input_tokens, full.usage.input_tokens);
    assert.equal(follow.output_text, full.output_text);
    assert.deepEqual(await openai().responses.retrieve(first.id), first);

    await assert.rejects(
      openai().responses.create({ model: MODEL_ID, input: 'x', previous_response_id: 'resp_missing' }),
      (e) => e.status === 404 && /resp_missing/.test(e.message),
    );
  });

  test('bad requests get 400s in the OpenAI error shape', async () => {
    for (const body of [
      { model: MODEL_ID },
      { model: MODEL_ID, input: [{ type: 'computer_call' }] },
      { model: MODEL_ID, input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] },
      { model: MODEL_ID, input: 'q', tools: [{ type: 'web_search' }] },
    ]) {
      await assert.rejects(openai().responses.create(body), (e) => e.status === 400 && e.error?.type === 'invalid_request_error');
    }
  });
});
