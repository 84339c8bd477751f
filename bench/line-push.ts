import { randomBytes, randomUUID } from 'node:crypto';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { insertLineChannel } from '../src/line/channels.ts';
import { textMessage } from '../src/line/messages.ts';
import { createMulticastChunks } from '../src/line/multicast.ts';
import { sendMulticastChunk } from '../src/line/multicast-send.ts';
import type { SendOutcome } from '../src/line/outcomes.ts';
import { startLine } from '../src/line/runtime.ts';
import { sendPush } from '../src/line/send.ts';
import { createLogger } from '../src/logger.ts';
import { createSecretBox } from '../src/secrets/secret-box.ts';
import { valueOf } from './args.ts';
import { startEmulatorThread } from './emulator-thread.ts';
import { openBenchDatabase } from './database.ts';

/**
 * Send throughput through our whole send path (member look-up, shared token bucket in the database,
 * the official SDK, the request log) against the emulator enforcing LINE's per-channel limits
 * (push 2,000/s, multicast 200/s) in another thread. The goal is >= 95% of LINE's limit with no
 * 429 at all. The rate is measured from 2 s on, so the bucket's initial burst does not flatter it.
 * Options: --endpoint push|multicast (default push), --count N (default 16000 pushes / 3000
 * multicasts), --concurrency N (default 64), --postgres URL (default: an SQLite file).
 */
const LINE_LIMIT = { push: 2000, multicast: 200 } as const;

export async function run(args: string[]): Promise<void> {
  const endpoint = valueOf(args, '--endpoint') === 'multicast' ? 'multicast' : 'push';
  const count = Number(valueOf(args, '--count') ?? (endpoint === 'push' ? 16_000 : 3000));
  const concurrency = Number(valueOf(args, '--concurrency') ?? 64);
  const pgUrl = valueOf(args, '--postgres');
  const token = randomBytes(16).toString('hex');
  const { worker, url } = await startEmulatorThread({ channels: [{ channelId: '1000000001', accessToken: token }], unknownUsers: 'deliver' });

  const database = await openBenchDatabase(pgUrl, 'push');
  try {
    const clock = systemClock();
    const config = createConfigStore(parseConfig({ line: { apiBaseUrl: url } }, 'bench'), { env: {} }, clock);
    const logger = createLogger({ level: 'warn' });
    const box = createSecretBox(randomBytes(32));
    const channel = await insertLineChannel(database.db, box, clock, { label: 'bench', slug: 'bench', channelId: '1000000001', channelSecret: 'x', channelAccessToken: token });
    const users = endpoint === 'push' ? 20_000 : Math.min(count, 100) * 500;
    const memberIds: number[] = [];
    const now = clock.now();
    for (let i = 0; i < users; i += 500) {
      const rows = await database.db
        .insertInto('members')
        .values(Array.from({ length: Math.min(500, users - i) }, (_, k) => ({ channel_id: channel.id, line_user_id: `U${(i + k).toString(16).padStart(32, '0')}`, following: 'following' as const, created_at: now, updated_at: now })))
        .returning('id')
        .execute();
      memberIds.push(...rows.map((r) => r.id));
    }
    const line = await startLine({ db: database.db, box, clock, config, logger });
    const messages = [textMessage('【上課提醒】英文會話 A1 12/1（二） 19:00 https://zoom.us/j/81234567890')];

    // Work items: a push per member (fresh retry key each), or stored multicast chunks of 500.
    let jobs: (() => Promise<SendOutcome>)[];
    if (endpoint === 'push') {
      jobs = Array.from({ length: count }, (_, i) => () => sendPush(line.send, { memberId: memberIds[i % memberIds.length] ?? 0, retryKey: randomUUID(), messages, attempt: 1 }));
    } else {
      const ids: number[] = [];
      for (let i = 0; i < count; i++) {
        const members = memberIds.slice((i % 100) * 500, (i % 100) * 500 + 500);
        const { chunks } = await createMulticastChunks(database.db, clock, { channelId: channel.id, recipients: members.map((memberId) => ({ memberId })), messages });
        ids.push(...chunks.map((c) => c.id));
      }
      jobs = ids.map((id) => () => sendMulticastChunk(line.send, id));
    }

    const outcomes: Record<string, number> = {};
    const completions: number[] = [];
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let job = jobs[next++]; job; job = jobs[next++]) {
          const outcome = await job();
          outcomes[outcome.kind] = (outcomes[outcome.kind] ?? 0) + 1;
          completions.push(performance.now() - start);
        }
      }),
    );
    const elapsed = performance.now() - start;
    const counters = (await (await fetch(`${url}/_emulator/counters`)).json()) as { rateLimited: number; accepted: number; delivered: number; byStatus: Record<string, number> };
    // From 2 s on, the pipeline is saturated and the bucket's initial burst is spent.
    const afterWarmUp = completions.filter((t) => t >= 2000).length;
    const steady = (afterWarmUp / (elapsed - 2000)) * 1000;
    const limit = LINE_LIMIT[endpoint];
    const configured = config.current().line.rateLimits[endpoint];
    console.log(`dialect: ${pgUrl ? 'postgres' : 'sqlite (file, WAL)'}; ${endpoint}, ${jobs.length} requests${endpoint === 'multicast' ? ' of 500 recipients' : ''}, ${concurrency} in flight; our bucket ${configured}/s, LINE's limit ${limit}/s`);
    console.log(`outcomes: ${JSON.stringify(outcomes)}; emulator: accepted ${counters.accepted}, delivered to ${counters.delivered} users, 429 rate-limited ${counters.rateLimited}, statuses ${JSON.stringify(counters.byStatus)}`);
    const perSecond = Array.from({ length: Math.ceil(elapsed / 1000) }, (_, i) => completions.filter((t) => t >= i * 1000 && t < (i + 1) * 1000).length);
    console.log(`per second: ${perSecond.join(' ')}`);
    console.log(`overall: ${((jobs.length / elapsed) * 1000).toFixed(0)} requests/s over ${(elapsed / 1000).toFixed(2)} s (includes the bucket's initial burst)`);
    console.log(`steady (from 2 s on): ${steady.toFixed(0)} requests/s   ratio to LINE's limit: ${(steady / limit).toFixed(3)}   to our configured rate: ${(steady / configured).toFixed(3)}   429s: ${counters.rateLimited}`);
    await line.stop();
  } finally {
    await worker.terminate();
    await database.close();
  }
}
