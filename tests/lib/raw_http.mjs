// Raw HTTP/1.1 over TCP for the hostile-input and soak suites: requests fetch() and the
// SDKs will not send (bad framing, trickled bytes, hang-ups) and connections held open.
// Node built-ins only.
import net from 'node:net';

// Parses one response out of `raw` (a Buffer): { status, headers, body } with lowercased
// header names, or null while the head or a Content-Length body is incomplete.
export function parseResponse(raw, { complete = false } = {}) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = lines[0].match(/^HTTP\/1\.[01] (\d{3})/);
  if (!m) return null;
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const body = raw.subarray(end + 4);
  const length = headers['content-length'] !== undefined ? Number(headers['content-length']) : null;
  if (length !== null && body.length < length && !complete) return null;
  return { status: Number(m[1]), headers, body: (length !== null ? body.subarray(0, length) : body).toString('utf8') };
}

// Connects to 127.0.0.1:port. Resolves with the socket once connected.
export function connect(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

// Sends `request` (a string or Buffer, or an async function (socket) that writes) and
// resolves when one whole response has arrived or the server closed the connection:
//   { status, headers, body, ms, closed, error }
// status is 0 when nothing parseable came back. Never rejects.
export function exchange(port, request, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let raw = Buffer.alloc(0);
    let settled = false;
    const s = net.connect(port, '127.0.0.1');
    const finish = (extra) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const r = parseResponse(raw, { complete: true }) || { status: 0, headers: {}, body: raw.toString('latin1') };
      s.destroy();
      resolve({ ...r, ms: Date.now() - t0, ...extra });
    };
    const timer = setTimeout(() => finish({ error: 'timeout' }), timeoutMs);
    s.on('data', (d) => {
      raw = Buffer.concat([raw, d]);
      if (parseResponse(raw)) finish({ closed: false });
    });
    s.on('end', () => finish({ closed: true }));
    s.on('close', () => finish({ closed: true }));
    s.on('error', (e) => finish({ error: e.code || String(e) }));
    s.on('connect', async () => {
      try {
        if (typeof request === 'function') await request(s);
        else s.write(request);
      } catch {
        // the server closed while we wrote: what it said is still read
      }
    });
  });
}

// Writes `data` to `socket` in pieces of `piece` bytes every `everyMs`, until done, the
// socket closes, or `stop()` returns true. Resolves with the number of bytes written.
export async function trickle(socket, data, { piece = 1, everyMs = 1000, stop = () => false } = {}) {
  let i = 0;
  while (i < data.length && !socket.destroyed && !stop()) {
    socket.write(data.subarray ? data.subarray(i, i + piece) : data.slice(i, i + piece));
    i += piece;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return Math.min(i, data.length);
}

// Writes `buffer` respecting backpressure; false once the socket is gone.
export function writeAll(socket, buffer) {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(false);
    if (socket.write(buffer)) return resolve(true);
    const done = (ok) => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    socket.once('drain', onDrain);
    socket.once('close', onClose);
  });
}

// The head of a JSON POST with the given framing headers (each ending in \r\n).
export function postHead(path, framing, host = '127.0.0.1') {
  return `POST ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n${framing}\r\n`;
}
