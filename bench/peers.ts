import { randomUUID } from 'node:crypto';
import { reportPeer } from './peer-report.ts';
import { Queue, Worker } from 'bullmq';
import { valueOf } from './args.ts';
import { startEmulatorThread } from './emulator-thread.ts';

/**
 * The same 20:00 peak driven through BullMQ delayed jobs (Redis at 127.0.0.1:6379): one queue per
 * channel with BullMQ's rate limiter at our push rate, one push per job carrying a retry key,
 * against the same emulator. This is the "glue it yourself" baseline the engine is measured against.
 * Options: --appointments N (100000), --concurrency N (64).
 */
export async function run(args: string[]): Promise<void> {
  const appointments = Number(valueOf(args, '--appointments') ?? 100_000);
  const concurrency = Number(valueOf(args, '--concurrency') ?? 64);
  const CHANNELS = 5;
  const channels = Array.from({ length: CHANNELS }, (_, i) => ({ channelId: `${2000 + i}`, channelSecret: `secret-${i}`, accessToken: `token-${i}` }));
  const { worker: thread, url } = await startEmulatorThread({ channels, unknownUsers: 'deliver' });
  const connection = { host: '127.0.0.1', port: 6379 };
  const prefix = `bench-${randomUUID().slice(0, 8)}`;
  const queues = channels.map((_, i) => new Queue(`line-${i}`, { connection, prefix }));
  try {
    const due = Date.now() + 15_000 + appointments / 10; // room to enqueue everything first
    for (let from = 0; from < appointments; from += 1000) {
      const byQueue = new Map<number, { name: string; data: { to: string; key: string }; opts: { delay: number; jobId: string } }[]>();
      for (let n = from; n < Math.min(appointments, from + 1000); n++) {
        const key = randomUUID();
        const q = n % CHANNELS;
        byQueue.set(q, [...(byQueue.get(q) ?? []), { name: 'push', data: { to: `U${n.toString(16).padStart(32, '0')}`, key }, opts: { delay: Math.max(0, due - Date.now()), jobId: key } }]);
      }
      for (const [q, jobs] of byQueue) await queues[q]?.addBulk(jobs);
    }
    let last = 0;
    let done = 0;
    const lateness: number[] = [];
    const workers = channels.map(
      (c, i) =>
        new Worker(
          `line-${i}`,
          async (job) => {
            const data = job.data as { to: string; key: string };
            const response = await fetch(`${url}/v2/bot/message/push`, {
              method: 'POST',
              headers: { authorization: `Bearer ${c.accessToken}`, 'content-type': 'application/json', 'x-line-retry-key': data.key },
              body: JSON.stringify({ to: data.to, messages: [{ type: 'text', text: '上課提醒 https://zoom.example.com/j/1' }] }),
            });
            await response.arrayBuffer();
            if (response.status !== 200 && response.status !== 409) throw new Error(`LINE ${response.status}`);
            const now = Date.now();
            last = Math.max(last, now);
            lateness.push(now - due);
            done++;
          },
          { connection, prefix, concurrency, limiter: { max: 1950, duration: 1000 } },
        ),
    );
    const started = Date.now();
    while (done < appointments && Date.now() - started < 30 * 60_000) await new Promise((r) => setTimeout(r, 200));
    await Promise.all(workers.map((w) => w.close()));
    await reportPeer({ label: 'bullmq       redis   ', emulatorUrl: url, sent: done, total: appointments, due: due, last, lateness, channels: CHANNELS, studentsPerClass: 5 });
  } finally {
    for (const q of queues) {
      await q.obliterate({ force: true }).catch(() => undefined);
      await q.close();
    }
    await thread.terminate();
  }
}
