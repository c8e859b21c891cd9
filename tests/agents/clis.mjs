// How to run each coding-agent CLI against a pensieve server: its environment, its config
// files and its command line, in one place for the test (agents.test.mjs) and the
// benchmark (bench/agent_clis.mjs). Every CLI gets its own HOME (and XDG folders under it)
// so no state leaks in or out; the binaries are the pinned ones in ./node_modules.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const cliBin = (name) => path.join(here, 'node_modules/.bin', name);
export const clisInstalled = () => ['claude', 'codex', 'opencode'].every((n) => fs.existsSync(cliBin(n)));

// A clean environment: only PATH and a private HOME (and XDG dirs under it).
export function cleanEnv(home, extra) {
  return {
    PATH: process.env.PATH, HOME: home, TMPDIR: os.tmpdir(), LANG: 'C.UTF-8', NO_COLOR: '1',
    XDG_CONFIG_HOME: path.join(home, '.config'), XDG_DATA_HOME: path.join(home, '.local/share'),
    XDG_CACHE_HOME: path.join(home, '.cache'), XDG_STATE_HOME: path.join(home, '.local/state'),
    ...extra,
  };
}

const mkdir = (d) => { fs.mkdirSync(d, { recursive: true }); return d; };

// Each function below prepares one CLI under `root` (a fresh folder) for a server at `url`
// and returns { bin, args, env, cwd, api }: the command `bin args` asks the CLI `prompt`
// once and exits; `api` is the route prefix it talks to.

// Claude Code over the Anthropic Messages API. The reply length is the CLI's own limit.
export function claudeCode(root, { url, prompt, maxOutput = 16 }) {
  const home = mkdir(path.join(root, 'home'));
  const env = cleanEnv(home, {
    ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: 'any',
    CLAUDE_CODE_MAX_OUTPUT_TOKENS: String(maxOutput), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1',
  });
  return { bin: cliBin('claude'), args: ['-p', prompt], env, cwd: home, api: '/v1/messages' };
}

// Codex CLI over the OpenAI Responses API. Codex sends no max_output_tokens: cap the
// replies with the server's -n. Its hosted web_search tool is turned off (pensieve has no
// web access to offer).
export function codex(root, { url, prompt, model }) {
  const home = mkdir(path.join(root, 'home'));
  const codexHome = mkdir(path.join(home, '.codex'));
  fs.writeFileSync(path.join(codexHome, 'config.toml'), [
    `model = "${model}"`,
    'model_provider = "pensieve"',
    'web_search = "disabled"',
    '',
    '[model_providers.pensieve]',
    'name = "pensieve"',
    `base_url = "${url}/v1"`,
    'wire_api = "responses"',
    'request_max_retries = 0',
    'stream_max_retries = 0',
    '',
  ].join('\n'));
  const env = cleanEnv(home, { CODEX_HOME: codexHome });
  return { bin: cliBin('codex'), args: ['exec', '--skip-git-repo-check', prompt], env, cwd: home, api: '/v1/responses' };
}

// opencode over OpenAI chat completions, with pensieve as an openai-compatible provider.
export function opencode(root, { url, prompt, model, context, maxOutput = 16 }) {
  const home = mkdir(path.join(root, 'home'));
  const work = mkdir(path.join(root, 'work'));
  fs.writeFileSync(path.join(work, 'opencode.json'), JSON.stringify({
    $schema: 'https://opencode.ai/config.json',
    autoupdate: false,
    share: 'disabled',
    provider: {
      pensieve: {
        npm: '@ai-sdk/openai-compatible',
        name: 'pensieve',
        options: { baseURL: `${url}/v1`, apiKey: 'none' },
        models: { [model]: { name: model, limit: { context, output: maxOutput } } },
      },
    },
    model: `pensieve/${model}`,
    small_model: `pensieve/${model}`,
  }, null, 2));
  const env = cleanEnv(home, { OPENCODE_DISABLE_AUTOUPDATE: '1', OPENCODE_DISABLE_MODELS_FETCH: '1' });
  return { bin: cliBin('opencode'), args: ['run', prompt], env, cwd: work, api: '/v1/chat/completions' };
}

// Runs a CLI to completion (SIGKILL after timeoutMs). Resolves {code, signal, out, err, ms}.
export function runCli({ bin, args, env, cwd }, { timeoutMs = 150000 } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(bin, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err, ms: performance.now() - t0 });
    });
  });
}

// The server logs one line per request: "pensieve: POST /v1/messages 200".
export function requestsSeen(serverLog) {
  return [...serverLog.matchAll(/^pensieve: (GET|POST|PUT|DELETE|OPTIONS|HEAD) (\S+) (\d{3})/gm)]
    .map((m) => ({ method: m[1], path: m[2], status: Number(m[3]) }));
}
