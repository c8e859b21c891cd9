#!/usr/bin/env node
// Embedding load: N clients each send /v1/embeddings requests of one ~20-word text back to
// back for S seconds against `pensieve serve -m MODEL -t 2`; prints requests/s. Shows
// requests sharing forward passes (engine/encoder_queue.h).
//   node bench/embed_load.mjs [--bin build/pensieve] --model bert.gguf [--clients 8] [--seconds 8]
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { startServer } from '../tests/lib/pensieve_server.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    bin: { type: 'string', default: process.env.PENSIEVE_BIN || path.join(root, 'build/pensieve') },
    model: { type: 'string', default: path.resolve(root, '../shared/models/arch/bert.gguf') },
    clients: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '8' },
  },
});
const words = 'the cat sat on a mat with old man sea fish cold morning dog bird'.split(' ');
const server = await startServer({ bin: opt.bin, args: ['-m', opt.model, '-t', '2', '-q', '-c', '512'] });
let done = 0;
const end = Date.now() + Number(opt.seconds) * 1000;
try {
  await Promise.all(Array.from({ length: Number(opt.clients) }, async (_, c) => {
    for (let n = 0; Date.now() < end; n++) {
      const text = Array.from({ length: 20 }, (_, i) => words[(c * 7 + n * 3 + i * 5) % words.length]).join(' ');
      const r = await fetch(`${server.url}/v1/embeddings`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ input: text }),
      });
      if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
      await r.json();
      done++;
    }
  }));
} finally {
  await server.stop();
}
console.log(`${path.basename(opt.model)}: ${opt.clients} clients, ${(done / Number(opt.seconds)).toFixed(1)} requests/s`);
