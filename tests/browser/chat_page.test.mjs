// The embedded chat page (web/index.html) in a real browser: Debian's chromium, headless,
// driven by puppeteer-core. Starts $PENSIEVE_BIN (default: build/pensieve) with
// stories260K on free ports (without and with an API key, and over a models folder), then,
// like a user: loads the page, sends a message, watches the reply stream in with its
// tokens/s line, stops a long generation, reloads (conversations live in localStorage),
// sets the API key in Settings; Markdown and code highlighting (and model HTML sanitised,
// no image fetched), collapsible reasoning and tool calls, the conversation list (switch,
// rename, export as a download, delete), edit and regenerate, the prompt-cache reuse per
// reply, and the model picker over `serve --models-dir`. Screenshots go to
// tests/browser/artifacts/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import puppeteer from 'puppeteer-core';

import { startServer as startPensieve } from '../lib/pensieve_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const BIN = process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve');
const SHARED = process.env.PENSIEVE_SHARED || path.resolve(root, '../shared');
const MODEL = path.join(SHARED, 'models/stories260K.gguf');
const MODEL_ID = 'stories260K.gguf';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(here, 'artifacts');
const KEY = 'browser-test-key';
// Generous per-step budget: the machine is small and shared.
const STEP_MS = 30000;

// ---------------------------------------------------------------- server helpers

// A pensieve server on a free port; stop() sends SIGTERM and checks for a clean exit.
async function startServer(extraArgs = []) {
  // -c 8192: room for the long generation the Stop test interrupts (stories260K makes
  // ~500-2000 tokens/s, so 7000 tokens take several seconds).
  const s = await startPensieve({
    bin: BIN, apiKey: KEY,
    args: ['-m', MODEL, '-t', '1', '--parallel', '2', '-c', '8192', '-q', ...extraArgs],
  });
  return {
    ...s,
    async stop() {
      const { code, signal } = await s.stop();
      assert.equal(signal, null, `server died by ${signal}; stderr:\n${s.stderr()}`);
      assert.equal(code, 0, `server exit code ${code}; stderr:\n${s.stderr()}`);
    },
  };
}

// ---------------------------------------------------------------- browser helpers

let browser;
let userDataDir;

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // A fresh profile every run: no state from earlier runs, nothing shared with a user's.
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-chromium-'));
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    // The machine has no internet: everything that would phone home stays off.
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', '--window-size=1100,800'],
    defaultViewport: { width: 1100, height: 800 },
    protocolTimeout: 60000,
  });
});

after(async () => {
  if (browser) await browser.close();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
  return file;
}

// A new tab that records the page's uncaught errors and every request it makes.
async function openPage(url) {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(url, { waitUntil: 'load' });
  return { page, errors, requests };
}

const text = (page, sel) => page.$eval(sel, (el) => el.textContent);

async function waitModelShown(page) {
  await page.waitForFunction(() => document.getElementById('model').textContent !== 'connecting…');
  return text(page, '#model');
}

// Sets a Settings field the way a user does: open the panel, select all, type, Tab away
// (the page saves on "change", which fires when the field loses focus).
async function setSetting(page, id, value) {
  const open = await page.$eval('#settings', (el) => el.classList.contains('open'));
  if (!open) await page.click('#settings-btn');
  await page.click(`#${id}`, { clickCount: 3 });
  await page.keyboard.down('Control');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.type(`#${id}`, value);
  await page.keyboard.press('Tab');
}

// Counts the separate moments the assistant's content changed (mutation-observer
// deliveries): a streamed reply shows up bit by bit, a reply delivered whole, once.
async function watchAssistantUpdates(page) {
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver((records) => {
      if (records.some((r) => r.target.closest && r.target.closest('.msg.assistant .content'))) window.__updates++;
    }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
  });
}

// Types a message and presses Send; returns the index of the new assistant message.
async function sendMessage(page, message) {
  const before = await page.$$eval('.msg.assistant', (els) => els.length);
  await page.click('#input');
  await page.type('#input', message);
  await page.click('#send');
  await page.waitForFunction((n) => document.querySelectorAll('.msg.assistant').length > n, {}, before);
  return before;
}

// Waits until the reply at index i is finished (Send enabled again, final stats line).
async function waitReplyDone(page, i) {
  await page.waitForFunction((i) => {
    const m = document.querySelectorAll('.msg.assistant')[i];
    return m && !document.getElementById('send').disabled && document.getElementById('stop').disabled &&
      (m.classList.contains('error') || / s total\)/.test(m.querySelector('.stats').textContent));
  }, { timeout: 60000 }, i);
}

const assistantAt = (page, i) => page.evaluate((i) => {
  const m = document.querySelectorAll('.msg.assistant')[i];
  return { content: m.querySelector('.content').textContent, stats: m.querySelector('.stats').textContent,
    error: m.classList.contains('error') };
}, i);

const STATS_RE = /^(\d+) tokens, ([\d.]+) tokens\/s/;

// The current conversation's messages as the page stored them (localStorage).
const storedMessages = (page) => page.evaluate(() => {
  const all = JSON.parse(localStorage.getItem('pensieve.conversations') || '[]');
  const id = JSON.parse(localStorage.getItem('pensieve.current'));
  const c = all.find((x) => x.id === id);
  return c ? c.messages : [];
});

// Replaces the stored conversations and reloads (for rendering checks of given content).
async function loadConversations(page, conversations) {
  await page.evaluate((cs) => {
    localStorage.setItem('pensieve.conversations', JSON.stringify(cs));
    localStorage.setItem('pensieve.current', JSON.stringify(cs[0].id));
  }, conversations);
  await page.reload({ waitUntil: 'load' });
  await waitModelShown(page);
}

// ---------------------------------------------------------------- tests

describe('chat page', () => {
  let server;
  let page;
  let errors;
  let requests;

  before(async () => {
    server = await startServer();
    ({ page, errors, requests } = await openPage(`${server.url}/`));
  });

  after(async () => {
    if (page) await page.close();
    if (server) await server.stop();
  });

  test('loads and shows the model name', async () => {
    assert.equal(await page.title(), 'pensieve');
    assert.equal(await waitModelShown(page), MODEL_ID);
    assert.equal(await page.$$eval('.msg', (els) => els.length), 0, 'a fresh profile starts with no messages');
    assert.equal(await page.$eval('#stop', (el) => el.disabled), true, 'Stop is disabled when nothing runs');
  });

  test('sends a message and streams a reply with a tokens/s line', async () => {
    // Enough tokens that the reply takes a while (stories260K is fast: ~2000 tokens/s).
    await setSetting(page, 'max-tokens', '1000');
    await watchAssistantUpdates(page);
    const i = await sendMessage(page, 'Once upon a time');
    // While it runs, Send is disabled and Stop enabled (unless the reply already ended).
    await page.waitForFunction((i) => {
      const m = document.querySelectorAll('.msg.assistant')[i];
      return m.querySelector('.content').textContent.trim().length > 0 &&
        /tokens\/s/.test(m.querySelector('.stats').textContent);
    }, {}, i);
    await waitReplyDone(page, i);
    const reply = await assistantAt(page, i);
    assert.equal(reply.error, false, `the reply is an error: ${reply.content}`);
    assert.ok(reply.content.trim().length > 0, 'empty reply');
    const m = reply.stats.match(STATS_RE);
    assert.ok(m, `stats line: ${reply.stats}`);
    assert.ok(Number(m[1]) > 1 && Number(m[1]) <= 1000, `token count ${m[1]} (max tokens 1000)`);
    assert.ok(Number(m[2]) > 0, `tokens/s ${m[2]}`);
    assert.match(reply.stats, /first token after [\d.]+ s/);
    const updates = await page.evaluate(() => window.__updates);
    console.log(`reply: ${m[1]} tokens, ${m[2]} tokens/s, shown in ${updates} updates`);
    assert.ok(updates >= 2, `the reply arrived in ${updates} update(s): not streamed`);
    assert.equal(await text(page, '.msg.user .content'), 'Once upon a time');
    await screenshot(page, 'chat-reply.png');
  });

  test('Stop ends a long generation', async () => {
    // Prompt + max tokens must fit the 8192-token context (else the server refuses).
    await setSetting(page, 'max-tokens', '7000');
    // A slow page (a loaded CI host) must still paint and take the click while tokens
    // arrive faster than it renders them: once it froze until the reply ended.
    await page.emulateCPUThrottling(8);
    const cancelledBefore = await server.metric('pensieve_requests_cancelled_total');
    const i = await sendMessage(page, 'Tell me a very long story about a dragon');
    await page.waitForFunction((i) => {
      const m = document.querySelectorAll('.msg.assistant')[i];
      return m.classList.contains('error') || m.querySelector('.content').textContent.length > 40;
    }, {}, i);
    const started = await assistantAt(page, i);
    assert.equal(started.error, false, started.content);
    assert.equal(await page.$eval('#stop', (el) => el.disabled), false, 'Stop is enabled while generating');
    await page.click('#stop');
    await page.waitForFunction(() => !document.getElementById('send').disabled &&
      document.getElementById('stop').disabled);
    await page.emulateCPUThrottling(null);
    const stopped = await assistantAt(page, i);
    await new Promise((r) => setTimeout(r, 1500));
    const later = await assistantAt(page, i);
    assert.equal(later.content, stopped.content, 'the reply kept growing after Stop');
    assert.equal(later.error, false, `Stop shows an error: ${later.content}`);
    const m = later.stats.match(STATS_RE);
    assert.ok(m, `stats line after Stop: ${later.stats}`);
    assert.ok(Number(m[1]) < 7000, `${m[1]} tokens: generation ran to the end`);
    // The server noticed the client leaving and cancelled the request.
    const end = Date.now() + 5000;
    let cancelled = await server.metric('pensieve_requests_cancelled_total');
    while (cancelled <= cancelledBefore && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      cancelled = await server.metric('pensieve_requests_cancelled_total');
    }
    assert.ok(cancelled > cancelledBefore, 'the server did not cancel the stopped request');
    assert.equal(await server.metric('pensieve_requests_active'), 0);
    // The partial reply is kept in the conversation.
    const stored = await storedMessages(page);
    assert.equal(stored.length, 4);
    assert.equal(stored[3].role, 'assistant');
    assert.ok(stored[3].content.length > 0);
    await screenshot(page, 'chat-stopped.png');
  });

  test('reload keeps the conversation and the settings', async () => {
    const before = await page.$$eval('.msg', (els) => els.map((e) => [e.className, e.querySelector('.content').textContent]));
    assert.equal(before.length, 4);
    await page.reload({ waitUntil: 'load' });
    assert.equal(await waitModelShown(page), MODEL_ID);
    const afterReload = await page.$$eval('.msg', (els) => els.map((e) => [e.className, e.querySelector('.content').textContent]));
    assert.deepEqual(afterReload, before);
    assert.equal(await page.$eval('#max-tokens', (el) => el.value), '7000');
    await screenshot(page, 'chat-reloaded.png');
  });

  test('a follow-up message sends the whole conversation', async () => {
    await setSetting(page, 'max-tokens', '32');
    const i = await sendMessage(page, 'And then?');
    await waitReplyDone(page, i);
    const reply = await assistantAt(page, i);
    assert.equal(reply.error, false, reply.content);
    const stored = await storedMessages(page);
    assert.deepEqual(stored.map((m) => m.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
  });

  test('New chat clears the conversation, even while a reply streams', async () => {
    await setSetting(page, 'max-tokens', '7000');
    const i = await sendMessage(page, 'Tell me another long story');
    await page.waitForFunction((i) => document.querySelectorAll('.msg.assistant')[i]
      .querySelector('.content').textContent.length > 20, {}, i);
    await page.click('#clear-btn');
    assert.equal(await page.$$eval('.msg', (els) => els.length), 0);
    // The running request is stopped, and its reply does not land in the new chat.
    await page.waitForFunction(() => !document.getElementById('send').disabled);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await storedMessages(page), []);
    await page.reload({ waitUntil: 'load' });
    await waitModelShown(page);
    assert.equal(await page.$$eval('.msg', (els) => els.length), 0);
    assert.equal(await server.metric('pensieve_requests_active'), 0);
  });

  test('Markdown and code render highlighted; HTML in a reply is sanitised', async () => {
    await loadConversations(page, [{
      id: 'md', title: 'markdown', created: 1, messages: [
        { role: 'user', content: 'show me' },
        { role: 'assistant', content: '**bold** and `code`\n\n```python\ndef f(x):\n    return x + 1\n```\n\n' +
          '| a | b |\n|---|---|\n| 1 | 2 |\n\n<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>' +
          '![tracker](http://127.0.0.1:1/leak?text=secret)' },
      ],
    }]);
    const html = await page.$eval('.msg.assistant .content', (el) => el.innerHTML);
    assert.match(html, /<strong>bold<\/strong>/);
    assert.equal(await page.$$eval('.msg.assistant pre code.hljs', (els) => els.length), 1, 'code block not highlighted');
    assert.ok(await page.$$eval('.msg.assistant pre code .hljs-keyword', (els) => els.length) >= 1);
    assert.equal(await page.$$eval('.msg.assistant table td', (els) => els.length), 2);
    // No script, no image (a reply must not make the browser fetch a URL of its choosing).
    assert.equal(await page.$$eval('.msg.assistant img, .msg.assistant script', (els) => els.length), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'HTML from the model ran');
    // The user's own text is shown as typed, never as Markdown.
    assert.equal(await text(page, '.msg.user .content'), 'show me');
    await screenshot(page, 'chat-markdown.png');
  });

  test('reasoning is collapsible and tool calls are shown', async () => {
    await loadConversations(page, [{
      id: 'think', title: 'tools', created: 1, messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: 'Let me check.', reasoning: 'The user wants the weather in Paris.',
          toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] },
      ],
    }]);
    assert.equal(await page.$eval('.msg.assistant details.reasoning', (el) => !el.hidden && !el.open), true,
      'reasoning is shown closed');
    await page.click('.msg.assistant details.reasoning summary');
    assert.equal(await page.$eval('.msg.assistant details.reasoning', (el) => el.open), true);
    assert.equal(await text(page, '.msg.assistant .thinking'), 'The user wants the weather in Paris.');
    assert.equal(await text(page, '.msg.assistant .tool-call'), '→ get_weather({"city":"Paris"})');
    await screenshot(page, 'chat-reasoning-tools.png');
  });

  test('conversations: a list to switch, rename, export and delete', async () => {
    await loadConversations(page, [{ id: 'first', title: 'first', created: 1, messages: [] }]);
    await setSetting(page, 'max-tokens', '16');
    let i = await sendMessage(page, 'Once upon a time');
    await waitReplyDone(page, i);
    await page.click('#clear-btn');
    i = await sendMessage(page, 'A dragon');
    await waitReplyDone(page, i);
    const titles = () => page.$$eval('#conversations .conv', (els) => els.map((e) => e.querySelector('.title, input').textContent));
    assert.deepEqual(await titles(), ['A dragon', 'Once upon a time']);
    // Switch to the older one.
    await page.click('#conversations .conv:nth-child(2) .title');
    assert.equal(await text(page, '.msg.user .content'), 'Once upon a time');
    // Rename it.
    await page.click('#conversations .conv:nth-child(2) .rename');
    await page.keyboard.down('Control'); await page.keyboard.press('KeyA'); await page.keyboard.up('Control');
    await page.keyboard.type('Story time');
    await page.keyboard.press('Enter');
    assert.deepEqual(await titles(), ['A dragon', 'Story time']);
    // Export it: the downloaded file is the conversation.
    const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-download-'));
    const cdp = await page.createCDPSession();
    await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
    await page.click('#export-btn');
    const file = path.join(downloads, 'Story_time.json');
    for (const end = Date.now() + 10000; !fs.existsSync(file) && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    const exported = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.rmSync(downloads, { recursive: true, force: true });
    assert.equal(exported.title, 'Story time');
    assert.deepEqual(exported.messages.map((m) => m.role), ['user', 'assistant']);
    assert.equal(exported.messages[0].content, 'Once upon a time');
    await screenshot(page, 'chat-conversations.png');
    // Delete it: the other one is shown; after a reload the list stays as left.
    await page.click('#conversations .conv:nth-child(2) .delete');
    assert.deepEqual(await titles(), ['A dragon']);
    await page.reload({ waitUntil: 'load' });
    await waitModelShown(page);
    assert.deepEqual(await titles(), ['A dragon']);
    assert.equal(await text(page, '.msg.user .content'), 'A dragon');
  });

  test('edit a message and regenerate a reply', async () => {
    const finished = () => server.metric('pensieve_requests_finished_total');
    let before = await finished();
    await page.click('.msg.assistant .regenerate');
    await waitReplyDone(page, 0);
    assert.ok(await finished() > before, 'regenerate sent no request');
    assert.deepEqual((await storedMessages(page)).map((m) => m.role), ['user', 'assistant']);
    before = await finished();
    await page.click('.msg.user .edit');
    await page.click('.msg.user textarea.edit', { clickCount: 3 });
    await page.keyboard.down('Control'); await page.keyboard.press('KeyA'); await page.keyboard.up('Control');
    await page.keyboard.type('A small cat');
    await page.click('.msg.user .save');
    await waitReplyDone(page, 0);
    assert.ok(await finished() > before, 'the edited message was not sent');
    const stored = await storedMessages(page);
    assert.deepEqual(stored.map((m) => m.role), ['user', 'assistant']);
    assert.equal(stored[0].content, 'A small cat');
    assert.equal(await text(page, '.msg.user .content'), 'A small cat');
    await screenshot(page, 'chat-edited.png');
  });

  test('each reply says how much of its prompt came from the cache', async () => {
    await setSetting(page, 'max-tokens', '16');
    const i = await sendMessage(page, 'And then what happened?');
    await waitReplyDone(page, i);
    const reply = await assistantAt(page, i);
    const m = reply.stats.match(/(\d+) of (\d+) prompt tokens from the cache/);
    assert.ok(m, `stats line: ${reply.stats}`);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) < Number(m[2]), `the follow-up reused ${m[1]} of ${m[2]} tokens`);
  });

  test('no page errors, no requests off the server', () => {
    assert.deepEqual(errors, []);
    const foreign = requests.filter((u) => !u.startsWith(`${server.url}/`));
    assert.deepEqual(foreign, [], 'the page must be self-contained');
  });
});

describe('chat page against a server with an API key', () => {
  let server;
  let page;
  let errors;

  before(async () => {
    server = await startServer(['--api-key', KEY]);
    ({ page, errors } = await openPage(`${server.url}/`));
  });

  after(async () => {
    if (page) await page.close();
    if (server) await server.stop();
  });

  test('without the key a message fails with a visible error', async () => {
    assert.match(await waitModelShown(page), /API key needed/, 'the model list needs the key');
    const i = await sendMessage(page, 'Hello');
    await waitReplyDone(page, i);
    const reply = await assistantAt(page, i);
    assert.equal(reply.error, true);
    assert.match(reply.content, /^Error: /);
    // The failed turn is not kept: the next request must not carry two user messages in a row.
    const stored = await storedMessages(page);
    assert.deepEqual(stored, []);
    await screenshot(page, 'chat-no-key.png');
  });

  test('with the key set in Settings, replies stream', async () => {
    await setSetting(page, 'api-key', KEY);
    await setSetting(page, 'max-tokens', '64');
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('pensieve.settings')));
    assert.equal(stored.apiKey, KEY);
    // Entering the key refreshes the model name.
    await page.waitForFunction((id) => document.getElementById('model').textContent === id, {}, MODEL_ID)
      .catch(async (e) => { throw new Error(`${e.message}; #model shows "${await text(page, '#model')}"`); });
    const i = await sendMessage(page, 'Once upon a time');
    await waitReplyDone(page, i);
    const reply = await assistantAt(page, i);
    assert.equal(reply.error, false, reply.content);
    assert.ok(reply.content.trim().length > 0);
    assert.match(reply.stats, STATS_RE);
    const messages = await storedMessages(page);
    assert.deepEqual(messages.map((m) => m.role), ['user', 'assistant']);
    await screenshot(page, 'chat-api-key.png');
  });

  test('after a reload the stored key lists the model', async () => {
    await page.reload({ waitUntil: 'load' });
    assert.equal(await waitModelShown(page), MODEL_ID);
    assert.equal(await page.$eval('#api-key', (el) => el.value), KEY);
    assert.deepEqual(errors, []);
  });
});

describe('chat page with a models folder (serve --models-dir)', () => {
  let server;
  let page;
  let errors;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pensieve-page-models-'));

  before(async () => {
    fs.symlinkSync(MODEL, path.join(dir, 'stories260K.gguf'));
    fs.symlinkSync(path.join(SHARED, 'models/arch/qwen2.gguf'), path.join(dir, 'qwen2.gguf'));
    const s = await startPensieve({ bin: BIN, args: ['--models-dir', dir, '-t', '1', '-c', '1024', '-q'] });
    server = s;
    ({ page, errors } = await openPage(`${server.url}/`));
  });

  after(async () => {
    if (page) await page.close();
    if (server) await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the picker lists the folder and the chosen model answers', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
    assert.deepEqual(await page.$$eval('#model option', (els) => els.map((o) => o.value)), ['qwen2', 'stories260K']);
    await page.select('#model', 'qwen2');
    await setSetting(page, 'max-tokens', '8');
    const i = await sendMessage(page, 'Hello');
    await waitReplyDone(page, i);
    assert.equal((await assistantAt(page, i)).error, false);
    const list = await (await fetch(`${server.url}/v1/models`)).json();
    assert.deepEqual(list.data.map((m) => [m.id, m.loaded]), [['qwen2', true], ['stories260K', false]]);
    // The choice is kept across a reload, and loaded models are marked.
    await page.reload({ waitUntil: 'load' });
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
    assert.equal(await page.$eval('#model', (el) => el.value), 'qwen2');
    assert.match(await page.$eval('#model option[value=qwen2]', (el) => el.textContent), /●/);
    await screenshot(page, 'chat-model-picker.png');
    assert.deepEqual(errors, []);
  });
});
