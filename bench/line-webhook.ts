import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { buildHttpApp } from '../src/http/app.ts';
import { insertLineChannel } from '../src/line/channels.ts';
import { startLine } from '../src/line/runtime.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { createSecretBox } from '../src/secrets/secret-box.ts';
import type { LoadInput, PhaseResult } from './webhook-load-worker.ts';
import { valueOf } from './args.ts';
import { openBenchDatabase } from './database.ts';

/**
 * Webhook intake: signed follow/unfollow events posted to the real endpoint over loopback by a load
 * generator in another thread. Each answer means the events were verified and stored (the service
 * acknowledges only after the insert). Reported: events/s and acknowledgement latency, against
 * the goal of 2,000 events/s with p99 < 50 ms on SQLite.
 * Options: --rate N (requests/s in the open loop, default 2000), --seconds N (default 10),
 * --concurrency N (closed loop, default 32), --max-seconds N (default 5), --events-per-request N
 * (default 1), --postgres URL (default: an SQLite file).
 */
const GOAL_EVENTS_PER_SECOND = 2000;
const GOAL_P99_MS = 50;

export async function run(args: string[]): Promise<void> {
  const option = (flag: string, fallback: number): number => Number(valueOf(args, flag) ?? fallback);
  const pgUrl = valueOf(args, '--postgres');
  const database = await openBenchDatabase(pgUrl, 'webhook');
  try {
    const clock = systemClock();
    const config = createConfigStore(parseConfig({ line: { webhookDomain: 'line.bench.test', fetchDisplayName: false } }, 'bench'), { env: {} }, clock);
    const logger = createLogger({ level: 'warn' });
    const box = createSecretBox(randomBytes(32));
    const secret = randomBytes(16).toString('hex');
    const destination = `U${randomBytes(16).toString('hex')}`;
    await insertLineChannel(database.db, box, clock, { label: 'bench', slug: 'bench', channelId: '1000000001', channelSecret: secret, channelAccessToken: 'unused', botUserId: destination });
    const line = await startLine({ db: database.db, box, clock, config, logger });
    line.start();
    const app = await buildHttpApp({ db: database.db, clock, box, config, logger, metrics: createMetrics(), adminToken: undefined, readiness: async () => ({ ready: true, checks: {} }), line });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;

    const input: LoadInput = {
      kind: 'line',
      url: `http://127.0.0.1:${port}/webhooks/line`,
      host: 'bench.line.bench.test',
      secret,
      destination,
      rate: option('--rate', GOAL_EVENTS_PER_SECOND),
      seconds: option('--seconds', 10),
      concurrency: option('--concurrency', 32),
      maxSeconds: option('--max-seconds', 5),
      eventsPerRequest: option('--events-per-request', 1),
      users: 5000,
    };
    const worker = new Worker(new URL('./webhook-load-worker.ts', import.meta.url), { workerData: input });
    const results = await new Promise<PhaseResult[]>((resolve, reject) => {
      worker.once('message', (m: PhaseResult[]) => resolve(m));
      worker.once('error', reject);
    });
    await worker.terminate();

    const drainStart = performance.now();
    await line.processor.idle();
    const drainMs = performance.now() - drainStart;
    const stored = await database.db.selectFrom('line_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const pending = await database.db.selectFrom('line_events').select((eb) => eb.fn.countAll<number>().as('n')).where('processed_at', 'is', null).executeTakeFirstOrThrow();
    const members = await database.db.selectFrom('members').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();

    console.log(`dialect: ${pgUrl ? 'postgres' : 'sqlite (file, WAL)'}; ${input.eventsPerRequest} event(s) per request, ${input.users} users, follow/unfollow`);
    for (const r of results) {
      const sorted = [...r.latenciesMs].sort((a, b) => a - b);
      const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
      const eventsPerSecond = (r.events / r.elapsedMs) * 1000;
      console.log(`\n${r.name}: ${r.requests} requests (${r.events} events) in ${(r.elapsedMs / 1000).toFixed(2)} s, non-200: ${r.errors} ${JSON.stringify(r.statuses)}`);
      console.log(`  events/s: ${eventsPerSecond.toFixed(0)}   ratio to the ${GOAL_EVENTS_PER_SECOND}/s goal: ${(eventsPerSecond / GOAL_EVENTS_PER_SECOND).toFixed(2)}`);
      console.log(`  ack latency ms: p50 ${q(0.5).toFixed(1)}  p90 ${q(0.9).toFixed(1)}  p99 ${q(0.99).toFixed(1)}  max ${(sorted.at(-1) ?? 0).toFixed(1)}   p99 / ${GOAL_P99_MS} ms bound: ${(q(0.99) / GOAL_P99_MS).toFixed(2)}`);
    }
    console.log(`\nstored events: ${Number(stored.n)}, still unprocessed after the load: drained in ${drainMs.toFixed(0)} ms, now ${Number(pending.n)} pending; members: ${Number(members.n)}`);
    await app.close();
    await line.stop();
  } finally {
    await database.close();
  }
}
