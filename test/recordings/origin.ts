import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One held response: it sent `bytes` and waits for release(); closed resolves when the client hangs up or it ends. */
export interface Held {
  sent: Promise<void>;
  closed: Promise<void>;
  release(): void;
}

/**
 * A file server over real HTTP (Range supported) standing in for Zoom's file URL where the
 * emulator cannot: a response held part-way for as long as a test needs, or an endless HTML page.
 */
export interface Origin {
  url: string;
  bytes: Buffer;
  ranges: (string | null)[];
  /** The next request gets `bytes` bytes, then waits for release(). */
  hold(bytes: number): Held;
  /** Every request gets a 200 text/html page that never ends (Zoom's refusal, gone wrong). */
  endlessHtml(): Held;
  close(): Promise<void>;
}

interface Armed extends Held {
  bytes: number;
  onSent(): void;
  onClosed(): void;
  released: Promise<void>;
}

function arm(bytes: number): Armed {
  let onSent = (): void => undefined;
  let onClosed = (): void => undefined;
  let release = (): void => undefined;
  const sent = new Promise<void>((r) => (onSent = r));
  const closed = new Promise<void>((r) => (onClosed = r));
  const released = new Promise<void>((r) => (release = r));
  return { bytes, sent, closed, released, onSent: () => onSent(), onClosed: () => onClosed(), release: () => release() };
}

export async function startOrigin(size: number): Promise<Origin> {
  const bytes = randomBytes(size);
  const ranges: (string | null)[] = [];
  const holds: Armed[] = [];
  let html: Armed | undefined;
  const open = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    ranges.push(req.headers.range ?? null);
    if (html) {
      const page = html;
      res.on('close', () => page.onClosed());
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.write('<html><body><div class="error">Only the host can download this recording.</div>');
      const more = (): void => {
        while (!res.destroyed && res.write(`<p>${'x'.repeat(1000)}</p>`));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const body = bytes.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'content-type': 'video/mp4',
      'content-length': body.length,
      ...(m ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    const hold = holds.shift();
    if (!hold) return void res.end(body);
    res.on('close', () => hold.onClosed());
    res.write(body.subarray(0, hold.bytes), () => hold.onSent());
    void hold.released.then(() => {
      if (!res.destroyed) res.end(body.subarray(hold.bytes));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/file`,
    bytes,
    ranges,
    hold(n) {
      const h = arm(n);
      holds.push(h);
      return h;
    },
    endlessHtml() {
      html = arm(0);
      return html;
    },
    async close() {
      for (const res of open) res.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
