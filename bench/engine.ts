import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { createSendPath } from '../src/deliveries/engine.ts';
import { lineDeliverySender } from '../src/deliveries/line-sender.ts';
import { createDeliveryEngine } from '../src/deliveries/loop.ts';
import { createDeliveryMetrics } from '../src/deliveries/metrics.ts';
import { engineSettings } from '../src/deliveries/settings.ts';
import { insertLineChannel } from '../src/line/channels.ts';
import { startLine } from '../src/line/runtime.ts';
import { upsertAppointments } from '../src/schedules/appointments.ts';
import { upsertSchedules } from '../src/schedules/schedules.ts';
import { createSecretBox } from '../src/secrets/secret-box.ts';
import { valueOf } from './args.ts';
import { startEmulatorThread } from './emulator-thread.ts';
import { describeCpu, sampleCpu } from './cpu.ts';
import { openBenchDatabase } from './database.ts';

/**
 * The 20:00 peak: A appointments in C classes across 5 channels, every class starting at the same
 * instant, against the LINE emulator (in its own thread) enforcing LINE's per-channel rates.
 * For each strategy: due instant → last delivery vs the rate-limit bound, lateness p50/p99, peak RSS,
 * database round trips. Options: --strategy S (default: all three), --postgres URL,
 * --appointments N (100000), --classes N (20000), --concurrency N (1000, the default), --batch N (1000), --no-multicast,
 * --profile FILE (CPU profile of the sending phase), --latency MS (LINE's answer time; 0: loopback only).
 */
export async function run(args: string[]): Promise<void> {
  const pgUrl = valueOf(args, '--postgres');
  const appointments = Number(valueOf(args, '--appointments') ?? 100_000);
  const classes = Number(valueOf(args, '--classes') ?? 20_000);
  const only = valueOf(args, '--strategy');
  const sendConcurrency = Number(valueOf(args, '--concurrency') ?? 1000);
  const batchSize = Number(valueOf(args, '--batch') ?? 1000);
  const multicast = !args.includes('--no-multicast');
  const profile = valueOf(args, '--profile');
  const latencyMs = Number(valueOf(args, '--latency') ?? 0);
  const strategies = (only ? [only] : ['all-at-once', 'batched', 'timing-wheel']) as ('all-at-once' | 'batched' | 'timing-wheel')[];
  for (const strategy of strategies) await runOne({ strategy, pgUrl, appointments, classes, sendConcurrency, batchSize, multicast, profile, latencyMs });
}

const CHANNELS = 5;
const userId = (n: number): string => `U${n.toString(16).padStart(32, '0')}`;

async function runOne(o: { strategy: 'all-at-once' | 'batched' | 'timing-wheel'; pgUrl: string | undefined; appointments: number; classes: number; sendConcurrency: number; batchSize: number; multicast: boolean; profile: string | undefined; latencyMs: number }): Promise<void> {
  const clock = systemClock();
  const channels = Array.from({ length: CHANNELS }, (_, i) => ({ channelId: `${1000 + i}`, channelSecret: `secret-${i}`, accessToken: `token-${i}` }));
  const { worker, url } = await startEmulatorThread({ channels, unknownUsers: 'deliver', latencyMs: o.latencyMs });
  let queries = 0;
  const byStatement = new Map<string, number>();
  const onQuery = (text: string): void => {
    queries++;
    if (process.env.BENCH_SQL) byStatement.set(text.slice(0, 60), (byStatement.get(text.slice(0, 60)) ?? 0) + 1);
  };
  const database = await openBenchDatabase(o.pgUrl, 'engine', { poolSize: 10, onQuery });
  try {
    const config = createConfigStore(
      parseConfig({ line: { apiBaseUrl: url }, notifications: { strategy: o.strategy, multicast: o.multicast, sendConcurrency: o.sendConcurrency, batchSize: o.batchSize, meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' }, lookahead: '2h' } }, 'bench'),
      { env: {} },
      clock,
    );
    const box = createSecretBox(randomBytes(32));
    for (const [i, c] of channels.entries()) {
      await insertLineChannel(database.db, box, clock, { label: `OA ${i}`, slug: `ch${i}`, channelId: c.channelId, channelSecret: c.channelSecret, channelAccessToken: c.accessToken });
    }
    const start = new Date(Date.now() + 3_600_000);
    for (let from = 0; from < o.classes; from += 5000) {
      await upsertSchedules(
        database.db,
        clock,
        Array.from({ length: Math.min(5000, o.classes - from) }, (_, k) => ({ externalId: `c${from + k}`, title: `Class ${from + k}`, startsAt: start, endsAt: new Date(start.getTime() + 3_000_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false })),
      );
    }
    await database.db.updateTable('schedules').set((eb) => ({ join_url: 'https://zoom.example.com/j/123456789', meeting_state: 'ready', meeting_version: eb.ref('version') })).execute();
    const perClass = Math.max(1, Math.round(o.appointments / o.classes));
    for (let from = 0; from < o.appointments; from += 5000) {
      await upsertAppointments(
        database.db,
        clock,
        Array.from({ length: Math.min(5000, o.appointments - from) }, (_, k) => {
          const n = from + k;
          const klass = Math.floor(n / perClass) % o.classes;
          return { externalId: `a${n}`, scheduleExternalId: `c${klass}`, student: { channel: `ch${klass % CHANNELS}`, lineUserId: userId(n) }, cancelled: false };
        }),
      );
    }
    // Everything falls due at one instant, 3 s from now (the peak), whatever the preparation took.
    const due = new Date(Date.now() + 3000);
    await database.db.updateTable('deliveries').set({ due_at: due, available_at: due }).execute();
    // The tables the day's imports filled have been vacuumed and analyzed by autovacuum by 20:00 (it
    // does so after 20% and 10% of a table changes): planning on a just-loaded table's missing
    // statistics sorts every pending row for each claim, and the re-timing above left a dead version
    // of every delivery, which no 20:00 has (its rows were written once, at booking) and which every
    // claim and completion would step over. The others are as a new installation has them.
    if (database.dialect === 'postgres') await sql`vacuum analyze schedules, appointments, members, deliveries`.execute(database.db);

    const logger = pino({ level: 'warn' });
    const line = await startLine({ db: database.db, box, clock, config, logger });
    const settings = () => engineSettings(config.current());
    const metrics = createDeliveryMetrics(new Registry());
    const sendPath = createSendPath({ db: database.db, clock, settings, logger, metrics, sender: lineDeliverySender({ db: database.db, config, send: line.send, imagemap: line.imagemap }) });
    const engine = createDeliveryEngine({ db: database.db, clock, settings, logger, sendPath });
    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 100);
    queries = 0;
    byStatement.clear();
    // --profile FILE: a CPU profile of the sending phase only (not the preparation).
    const session = o.profile ? new (await import('node:inspector/promises')).Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
    }
    const cpuFrom = await sampleCpu(worker);
    await engine.start();
    const settled = async (): Promise<number> => (await metrics.outcomes.get()).values.filter((v) => v.labels.state !== 'pending').reduce((n, v) => n + v.value, 0);
    for (let poll = 1; ; poll++) {
      // The engine's own count of final outcomes until it has them all (the database, polled on the
      // same CPUs as the run, cost up to 130 ms a poll over the claims' dead index entries), with the
      // database asked every 2 s all the same. Whether any is left, not how many, each on its partial index.
      if ((await settled()) < o.appointments && poll % 40 !== 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const pending = await database.db.selectFrom('deliveries').select('id').where('state', '=', 'pending').limit(1).executeTakeFirst();
      const sending = pending ? undefined : await database.db.selectFrom('deliveries').select('id').where('state', '=', 'sending').limit(1).executeTakeFirst();
      if (!pending && !sending) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    clearInterval(sampler);
    const cpu = describeCpu(cpuFrom, await sampleCpu(worker), database.dialect === 'postgres');
    if (session && o.profile) {
      const { profile } = await session.post('Profiler.stop');
      (await import('node:fs')).writeFileSync(o.profile, JSON.stringify(profile));
      session.disconnect();
    }
    const dbQueries = queries;
    if (process.env.BENCH_SQL) console.log([...byStatement.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12));
    await engine.stop();
    await line.stop();

    const rows = await database.db.selectFrom('deliveries').select(['sent_at', 'due_at', 'state']).execute();
    const lateness = rows.filter((r) => r.state === 'sent').map((r) => new Date(r.sent_at as string).getTime() - new Date(r.due_at).getTime()).sort((a, b) => a - b);
    const states = new Map<string, number>();
    for (const r of rows) states.set(r.state, (states.get(r.state) ?? 0) + 1);
    const last = lateness.at(-1) ?? 0;
    const pct = (p: number) => lateness[Math.min(lateness.length - 1, Math.floor(p * lateness.length))] ?? 0;
    // LINE's limits per channel: push 2,000 req/s, multicast 200 req/s of up to 500: a class's 5 students per multicast.
    const perChannel = o.appointments / CHANNELS;
    const bound = perChannel / (2000 + 200 * perClass);
    const counters = (await (await fetch(`${url}/_emulator/counters`)).json()) as { rateLimited: number; delivered: number; byEndpoint?: Record<string, number> };
    const received = (await (await fetch(`${url}/_emulator/received`)).json()) as { to: string }[];
    const perUser = new Map<string, number>();
    for (const r of received) perUser.set(r.to, (perUser.get(r.to) ?? 0) + 1);
    const duplicates = [...perUser.values()].filter((n) => n > 1).length;
    console.log(
      `${o.strategy.padEnd(12)} ${database.dialect.padEnd(8)} sent ${states.get('sent') ?? 0}/${rows.length}; due→last ${(last / 1000).toFixed(2)} s; bound ${bound.toFixed(2)} s; ratio ${(last / 1000 / bound).toFixed(2)}x; lateness p50 ${(pct(0.5) / 1000).toFixed(2)} s p99 ${(pct(0.99) / 1000).toFixed(2)} s; peak RSS ${(peakRss / 1048576).toFixed(0)} MB; DB round trips ${dbQueries} (${(dbQueries / o.appointments).toFixed(2)}/delivery); 429s ${counters.rateLimited}; duplicates ${duplicates}`,
    );
    console.log(`  ${cpu.text}: ${(last / 1000 / cpu.floorSeconds).toFixed(2)}x that`);
  } finally {
    await database.close();
    await worker.terminate();
  }
}
