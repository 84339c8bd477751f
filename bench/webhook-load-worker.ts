import { randomBytes, randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { signLineBody } from '../src/sandbox/line/index.ts';
import { webhookSignature } from '../src/sandbox/zoom/index.ts';

/**
 * Load generator for the webhook intake benchmarks (LINE and Zoom), in its own thread so it does
 * not share the service's event loop. Bodies are built and signed before the clock starts. Two
 * phases: open loop at a fixed rate (latency measured from the scheduled send time, so queueing is
 * not hidden), then closed loop at a fixed concurrency (the most the endpoint takes).
 */
export interface LoadInput {
  kind: 'line' | 'zoom';
  url: string;
  /** LINE: the Host header that names the channel. */
  host?: string;
  secret: string;
  /** LINE: the bot user id. */
  destination?: string;
  /** Zoom: the account id and the meeting ids the participants join. */
  accountId?: string;
  meetingIds?: string[];
  rate: number;
  seconds: number;
  concurrency: number;
  maxSeconds: number;
  eventsPerRequest: number;
  users: number;
}

export interface PhaseResult {
  name: string;
  requests: number;
  events: number;
  errors: number;
  statuses: Record<string, number>;
  elapsedMs: number;
  latenciesMs: number[];
}

interface Prepared {
  body: string;
  headers: Record<string, string>;
}

const input = workerData as LoadInput;
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
let seq = 0;
let clockMs = 1_700_000_000_000;

function lineBody(): Prepared {
  const events = Array.from({ length: input.eventsPerRequest }, () => {
    const n = seq++;
    const user = `U${(n % input.users).toString(16).padStart(32, '0')}`;
    clockMs += 1;
    return {
      type: Math.floor(n / input.users) % 2 === 0 ? 'follow' : 'unfollow',
      mode: 'active',
      timestamp: clockMs,
      source: { type: 'user', userId: user },
      webhookEventId: randomBytes(13).toString('hex').toUpperCase(),
      deliveryContext: { isRedelivery: false },
      ...(n % 2 === 0 ? { replyToken: randomBytes(16).toString('hex') } : {}),
    };
  });
  const body = JSON.stringify({ destination: input.destination, events });
  return { body, headers: { host: input.host ?? '', 'x-line-signature': signLineBody(input.secret, body) } };
}

/** A student joining one of the peak's meetings (Zoom sends one event per request). */
function zoomBody(): Prepared {
  const n = seq++;
  const ids = input.meetingIds ?? ['1'];
  const meetingId = ids[n % ids.length] ?? '1';
  const joinedAt = new Date(Date.now() + n);
  const body = JSON.stringify({
    event: 'meeting.participant_joined',
    event_ts: joinedAt.getTime(),
    payload: {
      account_id: input.accountId,
      object: {
        id: meetingId,
        uuid: `uuid-${meetingId}`,
        host_id: 'bench-host',
        topic: 'bench',
        type: 2,
        start_time: joinedAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
        duration: 50,
        timezone: 'Asia/Taipei',
        participant: { user_id: String(16_000_000 + n), user_name: `student ${n}`, id: '', participant_uuid: randomUUID(), email: `s${n % input.users}@example.com`, join_time: joinedAt.toISOString().replace(/\.\d{3}Z$/, 'Z') },
      },
    },
  });
  const ts = Math.floor(Date.now() / 1000);
  return { body, headers: { 'x-zm-request-timestamp': String(ts), 'x-zm-signature': webhookSignature(input.secret, ts, body) } };
}

function prepare(count: number): Prepared[] {
  return Array.from({ length: count }, () => (input.kind === 'zoom' ? zoomBody() : lineBody()));
}

function send(item: Prepared): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      input.url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(item.body)), ...item.headers },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(item.body);
  });
}

async function openLoop(): Promise<PhaseResult> {
  const total = Math.round(input.rate * input.seconds);
  const items = prepare(total);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let next = 0;
  let done = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      while (next < total && start + (next * 1000) / input.rate <= now) {
        const scheduled = start + (next * 1000) / input.rate;
        const item = items[next];
        next++;
        if (!item) continue;
        void send(item).then((status) => {
          latencies.push(performance.now() - scheduled);
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status !== 200) errors++;
          if (++done === total) resolve();
        });
      }
      if (next < total) setTimeout(tick, 1);
    };
    tick();
  });
  return { name: `open loop at ${input.rate} requests/s`, requests: total, events: total * input.eventsPerRequest, errors, statuses, elapsedMs: performance.now() - start, latenciesMs: latencies };
}

async function closedLoop(): Promise<PhaseResult> {
  const items = prepare(Math.round(input.concurrency * 1500 * input.maxSeconds / 10));
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const deadline = start + input.maxSeconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const item = items[next++];
      if (!item) return;
      const sent = performance.now();
      const status = await send(item);
      latencies.push(performance.now() - sent);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status !== 200) errors++;
    }
  };
  await Promise.all(Array.from({ length: input.concurrency }, worker));
  const requests = latencies.length;
  return { name: `closed loop, ${input.concurrency} in flight`, requests, events: requests * input.eventsPerRequest, errors, statuses, elapsedMs: performance.now() - start, latenciesMs: latencies };
}

// A short warm-up (JIT, connections, SQLite page cache) that is not reported.
const warm = prepare(500);
await Promise.all(warm.map(send));
const results = [await openLoop(), await closedLoop()];
agent.destroy();
parentPort?.postMessage(results);
