// Starting and stopping a `pensieve serve` process for the node test suites and the
// benchmarks (tests/server, tests/browser, bench/*.mjs). Node built-ins only, so every
// package can import it by relative path without a dependency of its own.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

// A TCP port nobody listens on right now (the kernel picks it).
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Runs `bin serve --port P ...args` on a free loopback port and waits until /health
// says 200 (the model has loaded). Returns
//   { url, port, pid, stderr(), metric(name), rss(), stop() }
// where stop() sends SIGTERM (SIGKILL after killAfterMs) and resolves to {code, signal}.
// Throws, with the server's stderr, if it exits early or is not ready within readyMs.
export async function startServer({ bin, args, readyMs = 30000, killAfterMs = 60000, apiKey = '', log = null }) {
  if (!fs.existsSync(bin)) throw new Error(`no pensieve binary at ${bin} (build it, or set PENSIEVE_BIN)`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const fullArgs = ['serve', '--port', String(port), ...args];
  if (log) log(`server: ${bin} ${fullArgs.join(' ')}`);
  const proc = spawn(bin, fullArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));

  const end = Date.now() + readyMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`server exited early (${proc.exitCode}); stderr:\n${stderr}`);
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`server not ready after ${readyMs / 1000} s; stderr:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    url,
    port,
    pid: proc.pid,
    stderr: () => stderr,
    // Resident memory of the server process in bytes (Linux /proc), NaN once it exited.
    rss() {
      try {
        const m = fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
        return m ? Number(m[1]) * 1024 : NaN;
      } catch {
        return NaN;
      }
    },
    // The value of one Prometheus metric (labels ignored), NaN if absent or unreachable.
    async metric(name) {
      try {
        const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
        const text = await (await fetch(`${url}/metrics`, { headers })).text();
        const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm'));
        return m ? Number(m[1]) : NaN;
      } catch {
        return NaN;
      }
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}
