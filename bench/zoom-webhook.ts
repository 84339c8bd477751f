import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { chunked } from '../src/db/transaction.ts';
import { buildHttpApp } from '../src/http/app.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { createZoomWebhookRuntime } from '../src/monitor/event-processor.ts';
import { createSecretBox } from '../src/secrets/secret-box.ts';
import { insertZoomAccount } from '../src/zoom/accounts.ts';
import { valueOf } from './args.ts';
import { openBenchDatabase } from './database.ts';
import type { LoadInput, PhaseResult } from './webhook-load-worker.ts';

/**
 * Zoom webhook intake at the 20:00 peak: signed participant_joined events for the peak's meetings,
 * posted to the real endpoint over loopback by a load generator in another thread. An answer means
 * the event was verified and stored; it is applied to attendance after the answer. Zoom waits 3 s
 * for an answer and then counts the delivery as failed, so the bound is the ack latency against
 * 3,000 ms; the rate to reach is the peak's (20,000 classes × 6 events, most within a few minutes:
 * about 1,000 events/s). Then: how long applying the stored events takes (events/s).
 * Options: --rate N (default 1000), --seconds N (default 10), --concurrency N (closed loop, default
 * 32), --max-seconds N (default 5), --meetings N (default 20000), --postgres URL.
 */
const BOUND_MS = 3000;
const PEAK_RATE = 1000;

export async function run(args: string[]): Promise<void> {
  const option = (flag: string, fallback: number): number => Number(valueOf(args, flag) ?? fallback);
  const pgUrl = valueOf(args, '--postgres');
  const meetings = option('--meetings', 20_000);
  const database = await openBenchDatabase(pgUrl, 'zoomhook');
  try {
    const clock = systemClock();
    const config = createConfigStore(parseConfig({}, 'bench'), { env: {} }, clock);
    const logger = createLogger({ level: 'warn' });
    const box = createSecretBox(randomBytes(32));
    const secret = randomBytes(16).toString('hex');
    const host = await insertZoomAccount(database.db, box, clock, { label: 'bench', plan: 'licensed', accountId: 'acc-bench', clientId: 'c', clientSecret: 's', hostUserId: 'bench-host', webhookSecretToken: secret });
    const now = clock.now();
    const meetingIds = Array.from({ length: meetings }, (_, i) => String(90_000_000_000 + i));
    for (const part of chunked(meetingIds, 500)) {
      await database.db
        .insertInto('schedules')
        .values(part.map((id) => ({ external_id: `c-${id}`, title: 'bench', trial: false, min_participants: 0, cancelled: false, starts_at: now, ends_at: new Date(now.getTime() + 3_000_000), version: 1, meeting_state: 'ready' as const, meeting_id: id, meeting_account_id: host.id, created_at: now, updated_at: now })))
        .execute();
    }
    const runtime = createZoomWebhookRuntime({ db: database.db, clock, config, logger, metrics: createMetrics() });
    runtime.start();
    const app = await buildHttpApp({ db: database.db, clock, box, config, logger, metrics: createMetrics(), adminToken: undefined, readiness: async () => ({ ready: true, checks: {} }), zoomWebhooks: runtime });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;

    const input: LoadInput = {
      kind: 'zoom',
      url: `http://127.0.0.1:${port}/webhooks/zoom/acc-bench`,
      secret,
      accountId: 'acc-bench',
      meetingIds,
      rate: option('--rate', PEAK_RATE),
      seconds: option('--seconds', 10),
      concurrency: option('--concurrency', 32),
      maxSeconds: option('--max-seconds', 5),
      eventsPerRequest: 1,
      users: 100_000,
    };
    const worker = new Worker(new URL('./webhook-load-worker.ts', import.meta.url), { workerData: input });
    const results = await new Promise<PhaseResult[]>((resolve, reject) => {
      worker.once('message', (m: PhaseResult[]) => resolve(m));
      worker.once('error', reject);
    });
    await worker.terminate();

    const count = async (pending: boolean): Promise<number> => {
      let q = database.db.selectFrom('meeting_events').select((eb) => eb.fn.countAll<number>().as('n'));
      if (pending) q = q.where('processed_at', 'is', null);
      return Number((await q.executeTakeFirstOrThrow()).n);
    };
    const backlog = await count(true);
    const drainStart = performance.now();
    await runtime.idle();
    const drainMs = performance.now() - drainStart;
    const stored = await count(false);
    const attendance = await database.db.selectFrom('schedules').select((eb) => eb.fn.sum<number>('attendance').as('n')).executeTakeFirstOrThrow();

    console.log(`dialect: ${pgUrl ? 'postgres' : 'sqlite (file, WAL)'}; ${meetings} meetings, meeting.participant_joined events, one per request`);
    for (const r of results) {
      const sorted = [...r.latenciesMs].sort((a, b) => a - b);
      const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
      const perSecond = (r.events / r.elapsedMs) * 1000;
      console.log(`\n${r.name}: ${r.requests} events in ${(r.elapsedMs / 1000).toFixed(2)} s, non-200: ${r.errors} ${JSON.stringify(r.statuses)}`);
      console.log(`  events/s: ${perSecond.toFixed(0)}   ratio to the ${PEAK_RATE}/s peak: ${(perSecond / PEAK_RATE).toFixed(2)}`);
      console.log(`  ack latency ms: p50 ${q(0.5).toFixed(1)}  p99 ${q(0.99).toFixed(1)}  max ${(sorted.at(-1) ?? 0).toFixed(1)}   p99 / Zoom's ${BOUND_MS} ms timeout: ${(q(0.99) / BOUND_MS).toFixed(3)}`);
    }
    console.log(`\nstored events: ${stored}; unapplied when the load stopped: ${backlog}, applied in ${drainMs.toFixed(0)} ms; students counted present: ${Number(attendance.n)}`);
    await app.close();
    await runtime.stop();
  } finally {
    await database.close();
  }
}
