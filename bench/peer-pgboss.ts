import { randomUUID } from 'node:crypto';
import { reportPeer } from './peer-report.ts';
import { PgBoss } from 'pg-boss';
import { valueOf } from './args.ts';
import { startEmulatorThread } from './emulator-thread.ts';

/**
 * The same 20:00 peak through pg-boss `startAfter` jobs on PostgreSQL: one queue per channel, a
 * worker per queue fetching batches, each job one push carrying a retry key, a per-channel token
 * bucket in the worker at our push rate (pg-boss has no rate limiter). Options: --postgres URL
 * (default postgres://postgres@127.0.0.1:5432/test), --appointments N (100000), --concurrency N (64).
 */
export async function run(args: string[]): Promise<void> {
  const connectionString = valueOf(args, '--postgres') ?? 'postgres://postgres@127.0.0.1:5432/test';
  const appointments = Number(valueOf(args, '--appointments') ?? 100_000);
  const concurrency = Number(valueOf(args, '--concurrency') ?? 64);
  const CHANNELS = 5;
  const channels = Array.from({ length: CHANNELS }, (_, i) => ({ channelId: `${3000 + i}`, channelSecret: `secret-${i}`, accessToken: `token-${i}` }));
  const { worker: thread, url } = await startEmulatorThread({ channels, unknownUsers: 'deliver' });
  const schema = `pgboss_bench_${randomUUID().slice(0, 8)}`;
  const boss = new PgBoss({ connectionString, schema, max: 10 });
  boss.on('error', () => undefined);
  await boss.start();
  try {
    for (let i = 0; i < CHANNELS; i++) await boss.createQueue(`line-${i}`);
    const due = new Date(Date.now() + 20_000 + appointments / 5);
    for (let from = 0; from < appointments; from += 5000) {
      const byQueue = new Map<number, { data: { to: string; key: string }; startAfter: Date }[]>();
      for (let n = from; n < Math.min(appointments, from + 5000); n++) {
        const q = n % CHANNELS;
        byQueue.set(q, [...(byQueue.get(q) ?? []), { data: { to: `U${n.toString(16).padStart(32, '0')}`, key: randomUUID() }, startAfter: due }]);
      }
      for (const [q, jobs] of byQueue) await boss.insert(`line-${q}`, jobs);
    }
    let last = 0;
    let done = 0;
    const lateness: number[] = [];
    for (const [i, c] of channels.entries()) {
      // A token bucket per channel at 1,950 pushes/s (pg-boss itself does not rate-limit).
      let tokens = 390;
      let refilled = Date.now();
      const take = async (): Promise<void> => {
        for (;;) {
          const now = Date.now();
          tokens = Math.min(390, tokens + ((now - refilled) * 1950) / 1000);
          refilled = now;
          if (tokens >= 1) {
            tokens -= 1;
            return;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      };
      await boss.work<{ to: string; key: string }>(`line-${i}`, { batchSize: concurrency, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        await Promise.all(
          jobs.map(async (job) => {
            await take();
            const response = await fetch(`${url}/v2/bot/message/push`, {
              method: 'POST',
              headers: { authorization: `Bearer ${c.accessToken}`, 'content-type': 'application/json', 'x-line-retry-key': job.data.key },
              body: JSON.stringify({ to: job.data.to, messages: [{ type: 'text', text: '上課提醒 https://zoom.example.com/j/1' }] }),
            });
            await response.arrayBuffer();
            if (response.status !== 200 && response.status !== 409) throw new Error(`LINE ${response.status}`);
            const now = Date.now();
            last = Math.max(last, now);
            lateness.push(now - due.getTime());
            done++;
          }),
        );
      });
    }
    const started = Date.now();
    while (done < appointments && Date.now() - started < 30 * 60_000) await new Promise((r) => setTimeout(r, 200));
    await reportPeer({ label: 'pg-boss      postgres', emulatorUrl: url, sent: done, total: appointments, due: due.getTime(), last, lateness, channels: CHANNELS, studentsPerClass: 5 });
  } finally {
    await boss.stop({ graceful: false }).catch(() => undefined);
    const { Client } = (await import('pg')).default;
    const client = new Client({ connectionString });
    await client.connect();
    await client.query(`drop schema if exists ${schema} cascade`);
    await client.end();
    await thread.terminate();
  }
}
