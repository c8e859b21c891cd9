// The `pensieve serve` process a test file of this folder talks to: started before the
// file's tests with stories260K (or `model`) and `args`, stopped after them, and it must then exit
// cleanly (status 0, no signal). Also the SDK clients pointed at it.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

import { startServer } from '../lib/pensieve_server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve');
export const SHARED = process.env.PENSIEVE_SHARED || path.resolve(root, '../shared');
export const MODEL_ID = 'stories260K.gguf';

// Returns { url, openai(), anthropic() }; url is set once the server is ready. `model`:
// a path under ../shared/models; `ctx`: the context (-c) per slot.
export function serveDuringTests({ apiKey = '', args = [], model = MODEL_ID, ctx = 1024 } = {}) {
  const suite = {
    url: '',
    openai: () => new OpenAI({ apiKey: apiKey || 'none', baseURL: `${suite.url}/v1`, maxRetries: 0 }),
    anthropic: () => new Anthropic({ apiKey: apiKey || 'none', baseURL: suite.url, maxRetries: 0 }),
  };
  let server;
  before(async () => {
    const keyArgs = apiKey ? ['--api-key', apiKey] : [];
    server = await startServer({
      bin: BIN, apiKey,
      args: ['-m', path.join(SHARED, 'models', model), ...keyArgs, '-t', '1', '-c', String(ctx), '-q', ...args],
    });
    suite.url = server.url;
  });
  after(async () => {
    if (!server) return;
    const { code, signal } = await server.stop();
    assert.equal(signal, null, `server died by ${signal}; stderr:\n${server.stderr()}`);
    assert.equal(code, 0, `server exit code ${code}; stderr:\n${server.stderr()}`);
  });
  return suite;
}
