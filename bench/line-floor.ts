import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent } from 'undici';
import { valueOf } from './args.ts';
import { startEmulatorThread } from './emulator-thread.ts';
import { describeCpu, sampleCpu } from './cpu.ts';

/**
 * The machine's floor for the 20:00 peak: the very requests the engine bench makes (per channel,
 * a third of the classes as multicasts of 5 and the rest as single pushes: 73,320 requests), sent
 * by the barest client with no database, no templates and no bookkeeping, against the same emulator
 * thread with LINE's rates. A 429 is retried after 20 ms. What this takes is what the hardware
 * allows; the engine's time over it is the cost of doing the job properly.
 * Options: --client undici|http|fetch (default undici: what the service uses), --concurrency N
 * (128), --unlimited (no rate limits: the raw request rate of client plus emulator).
 */
export async function run(args: string[]): Promise<void> {
  const client = valueOf(args, '--client') ?? 'undici';
  const concurrency = Number(valueOf(args, '--concurrency') ?? 128);
  const unlimited = args.includes('--unlimited');
  const channels = Array.from({ length: 5 }, (_, i) => ({ channelId: `${1000 + i}`, channelSecret: `secret-${i}`, accessToken: `token-${i}` }));
  const emulator = await startEmulatorThread({ channels, unknownUsers: 'deliver', unlimited });
  const { worker } = emulator;
  const url = new URL(emulator.url);
  const text = '【上課提醒】英文會話 A1\n時間：12/1（二） 19:00–19:50\n請點以下連結進入 Zoom 教室：\nhttps://zoom.example.com/j/123456789';
  interface Job {
    token: string;
    path: string;
    body: string;
  }
  const jobs: Job[] = [];
  let user = 0;
  for (let klass = 0; klass < 20_000; klass++) {
    const token = `token-${klass % 5}`;
    const ids = Array.from({ length: 5 }, () => `U${(user++).toString(16).padStart(32, '0')}`);
    // The rate-limit optimum: per channel, 1 class in 3 by multicast (200/s x 5) and the rest by push (2,000/s).
    if (Math.floor(klass / 5) % 3 === 0) jobs.push({ token, path: '/v2/bot/message/multicast', body: JSON.stringify({ to: ids, messages: [{ type: 'text', text }] }) });
    else for (const id of ids) jobs.push({ token, path: '/v2/bot/message/push', body: JSON.stringify({ to: id, messages: [{ type: 'text', text }] }) });
  }
  const headers = (job: Job) => ({ authorization: `Bearer ${job.token}`, 'content-type': 'application/json', 'x-line-retry-key': randomUUID() });
  const undici = new Agent({ keepAliveTimeout: 30_000 });
  const http = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  const senders: Record<string, (job: Job) => Promise<number>> = {
    undici: async (job) => {
      const res = await undici.request({ origin: url.origin, path: job.path, method: 'POST', headers: headers(job), body: job.body });
      await res.body.text();
      return res.statusCode;
    },
    http: (job) =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ agent: http, host: url.hostname, port: url.port, method: 'POST', path: job.path, headers: headers(job) }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(job.body);
      }),
    fetch: async (job) => {
      const res = await fetch(url.origin + job.path, { method: 'POST', headers: headers(job), body: job.body });
      await res.text();
      return res.status;
    },
  };
  const send = senders[client];
  if (!send) throw new Error(`--client must be one of ${Object.keys(senders).join(', ')}`);
  const statuses = new Map<number, number>();
  let next = 0;
  const cpuFrom = await sampleCpu(worker);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let job = jobs[next++]; job; job = jobs[next++]) {
        for (;;) {
          const status = await send(job);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if (status !== 429) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = describeCpu(cpuFrom, await sampleCpu(worker), false);
  const bound = 20_000 / (2000 + 200 * 5);
  console.log(
    `line-floor ${client}${unlimited ? ' (no rate limits)' : ''}: ${jobs.length} requests in ${seconds.toFixed(2)} s (${Math.round(jobs.length / seconds)} req/s); rate-limit bound ${bound.toFixed(2)} s; ratio ${(seconds / bound).toFixed(2)}x; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
  );
  console.log(`  ${cpu.text}`);
  await undici.close();
  http.destroy();
  await worker.terminate();
}
