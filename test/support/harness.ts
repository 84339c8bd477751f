import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { virtualClock, type VirtualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore, type ConfigStore } from '../../src/config/store.ts';
import type { Dialect } from '../../src/db/database.ts';
import { buildHttpApp } from '../../src/http/app.ts';
import { capturingLogger } from './logs.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createSecretBox, type SecretBox } from '../../src/secrets/secret-box.ts';
import { openTestDatabase, type TestDatabase } from './databases.ts';

export interface Harness {
  app: FastifyInstance;
  database: TestDatabase;
  clock: VirtualClock;
  box: SecretBox;
  config: ConfigStore;
  /** Every log line written so far. */
  logs: string[];
  close(): Promise<void>;
}

/** The real Fastify app on a real database, driven through `inject`, with captured logs. */
export async function openHarness(dialect: Dialect, options: { adminToken?: string } = {}): Promise<Harness> {
  const database = await openTestDatabase(dialect);
  const clock = virtualClock('2026-12-01T00:00:00Z');
  const config = createConfigStore(parseConfig({}, 'test'), { env: {} }, clock);
  const box = createSecretBox(randomBytes(32));
  const { logger, logs } = capturingLogger();
  const app = await buildHttpApp({
    db: database.db,
    clock,
    box,
    config,
    logger,
    metrics: createMetrics(),
    adminToken: options.adminToken,
    readiness: async () => ({ ready: true, checks: { database: 'ok' } }),
  });
  await app.ready();
  return {
    app,
    database,
    clock,
    box,
    config,
    logs,
    close: async () => {
      await app.close();
      await database.close();
    },
  };
}

export const userId = (n: number): string => `U${n.toString(16).padStart(32, '0')}`;

/** Row counts of every table, to assert that a rejected request wrote nothing. */
export async function rowCounts(database: TestDatabase): Promise<Record<string, number>> {
  const tables = ['zoom_accounts', 'line_channels', 'members', 'schedules', 'appointments', 'deliveries'] as const;
  const out: Record<string, number> = {};
  for (const table of tables) {
    const row = await database.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    out[table] = Number(row.n);
  }
  return out;
}
