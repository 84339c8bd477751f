import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { createSendPath } from '../../src/deliveries/engine.ts';
import { lineDeliverySender } from '../../src/deliveries/line-sender.ts';
import { createDeliveryMetrics } from '../../src/deliveries/metrics.ts';
import { engineSettings } from '../../src/deliveries/settings.ts';
import { insertLineChannel } from '../../src/line/channels.ts';
import { startLine, type LineRuntime } from '../../src/line/runtime.ts';
import { startLineEmulator } from '../../src/sandbox/line/index.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';
import { openTestDatabase, TEST_DATABASE_URL } from '../support/databases.ts';

const userId = (n: number): string => `U${n.toString(16).padStart(32, '0')}`;

/**
 * Several engine processes (each its own connection pool and LINE runtime) on one PostgreSQL
 * database, on real time against the emulator enforcing LINE's rates: disjoint claims, no idle
 * partner, every message exactly once.
 */
describe.runIf(TEST_DATABASE_URL)('engine replicas on postgres', () => {
  it.each([2, 3])('%i instances deliver 10,000 deliveries exactly once between them', async (replicas) => {
    const clock = systemClock();
    const database = await openTestDatabase('postgres');
    const emulator = await startLineEmulator({ clock, unknownUsers: 'deliver', channels: [{}] });
    const pools: Database[] = [];
    const runtimes: LineRuntime[] = [];
    try {
      const emu = emulator.channels()[0];
      if (!emu) throw new Error('no channel');
      const config = createConfigStore(
        parseConfig({ line: { apiBaseUrl: emulator.url }, notifications: { meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' } } }, 'test'),
        { env: {} },
        clock,
      );
      const box = createSecretBox(randomBytes(32));
      await insertLineChannel(database.db, box, clock, { label: 'OA', slug: 'main', channelId: emu.channelId, channelSecret: emu.channelSecret, channelAccessToken: emu.accessToken });
      const classes = 2000;
      // Due one second ago: the classes start in 9 minutes 59 seconds.
      const start = new Date(Date.now() + 10 * 60_000 - 1000);
      await upsertSchedules(
        database.db,
        clock,
        Array.from({ length: classes }, (_, i) => ({ externalId: `c${i}`, title: `Class ${i}`, startsAt: start, endsAt: new Date(start.getTime() + 3_000_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false })),
      );
      await database.db.updateTable('schedules').set((eb) => ({ join_url: 'https://zoom.example.com/j/1', meeting_state: 'ready', meeting_version: eb.ref('version') })).execute();
      for (let from = 0; from < classes * 5; from += 5000) {
        await upsertAppointments(
          database.db,
          clock,
          Array.from({ length: 5000 }, (_, k) => ({ externalId: `a${from + k}`, scheduleExternalId: `c${Math.floor((from + k) / 5)}`, student: { channel: 'main', lineUserId: userId(100_000 + from + k) }, cancelled: false })),
        );
      }

      // Each replica claims pages until nothing is claimable, then waits for the others' pages to
      // finish (an event, not a timer); when every replica is waiting, the work is done. No faults
      // are injected, so nothing waits for a retry.
      const claimedBy: number[] = [];
      let waiting = 0;
      let finished = false;
      const wakers: (() => void)[] = [];
      const wakeAll = (): void => {
        for (const wake of wakers.splice(0)) wake();
      };
      const drain = async (path: { claimAndSend(limit: number): Promise<{ claimed: number }> }, i: number): Promise<void> => {
        while (!finished) {
          const report = await path.claimAndSend(500);
          claimedBy[i] = (claimedBy[i] ?? 0) + report.claimed;
          if (report.claimed > 0) {
            wakeAll();
            continue;
          }
          waiting++;
          if (waiting === replicas) {
            finished = true;
            wakeAll();
            return;
          }
          await new Promise<void>((resolve) => wakers.push(resolve));
          waiting--;
        }
      };
      const logger = pino({ level: 'silent' });
      const metrics = createDeliveryMetrics(new Registry());
      const drains = [];
      for (let i = 0; i < replicas; i++) {
        const pool = await openDatabase(database.url, { schema: database.schema ?? 'public', poolSize: 6 });
        pools.push(pool);
        const line = await startLine({ db: pool.db, box, clock, config, logger });
        runtimes.push(line);
        const path = createSendPath({
          db: pool.db,
          clock,
          settings: () => ({ ...engineSettings(config.current()), batchSize: 500 }),
          logger,
          metrics,
          sender: lineDeliverySender({ db: pool.db, config, send: line.send, imagemap: line.imagemap }),
          owner: `replica-${i}`,
        });
        claimedBy.push(0);
        drains.push(drain(path, i));
      }
      await Promise.all(drains);

      const received = emulator.received();
      expect(received).toHaveLength(10_000);
      expect(new Set(received.map((r) => r.to)).size).toBe(10_000);
      const states = await database.db.selectFrom('deliveries').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
      expect(states.map((s) => [s.state, Number(s.n)])).toEqual([['sent', 10_000]]);
      for (const n of claimedBy) expect(n).toBeGreaterThan(0);
      expect(emulator.requests().filter((r) => r.status === 429)).toHaveLength(0);
    } finally {
      for (const r of runtimes) await r.stop();
      for (const p of pools) await p.close();
      await emulator.close();
      await database.close();
    }
  }, 120_000);
});
