import { randomBytes } from 'node:crypto';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { buildHttpApp } from '../src/http/app.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { createSecretBox } from '../src/secrets/secret-box.ts';
import { valueOf } from './args.ts';
import { openBenchDatabase } from './database.ts';

/**
 * How fast a platform can sync its timetable: N schedules and 5N appointments through
 * the two bulk endpoints (validation, upsert, members) in batches of 5,000, compared with the floor:
 * a bare multi-row INSERT of the same rows into the same tables in one transaction.
 * Options: --schedules N (default 10000), --postgres URL (default: SQLite file).
 */
export async function run(args: string[]): Promise<void> {
  const n = Number(valueOf(args, '--schedules') ?? 10_000);
  const pgUrl = valueOf(args, '--postgres');
  const ours = await measureApi(pgUrl, n);
  const floor = await measureBareInsert(pgUrl, n);
  const rows = n * 6;
  console.log(`dialect: ${pgUrl ? 'postgres' : 'sqlite (file, WAL)'}; ${n} schedules + ${n * 5} appointments of ${Math.min(n * 5, 20_000)} students`);
  console.log(`admin API bulk upsert: ${ours.toFixed(0)} ms  (${((rows / ours) * 1000).toFixed(0)} rows/s)`);
  console.log(`bare INSERT floor:     ${floor.toFixed(0)} ms  (${((rows / floor) * 1000).toFixed(0)} rows/s)`);
  console.log(`ratio to floor: ${(ours / floor).toFixed(2)}x`);
}

const userId = (i: number): string => `U${(i % 20_000).toString(16).padStart(32, '0')}`;
const startOf = (i: number): Date => new Date(Date.UTC(2026, 11, 1) + (i % 2000) * 3_600_000);

async function measureApi(pgUrl: string | undefined, n: number): Promise<number> {
  const database = await openBenchDatabase(pgUrl, 'api');
  const clock = systemClock();
  const app = await buildHttpApp({
    db: database.db,
    clock,
    box: createSecretBox(randomBytes(32)),
    config: createConfigStore(parseConfig({}, 'bench'), { env: {} }, clock),
    logger: createLogger({ level: 'warn' }),
    metrics: createMetrics(),
    adminToken: undefined,
    readiness: async () => ({ ready: true, checks: {} }),
  });
  await app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '1', channelSecret: 's', channelAccessToken: 't' } });
  const started = performance.now();
  for (let i = 0; i < n; i += 5000) {
    const items = Array.from({ length: Math.min(5000, n - i) }, (_, k) => {
      const s = startOf(i + k);
      return { externalId: `s-${i + k}`, title: `class ${i + k}`, startsAt: s.toISOString(), endsAt: new Date(s.getTime() + 3_000_000).toISOString() };
    });
    const response = await app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items } });
    if (response.statusCode !== 200) throw new Error(response.body);
  }
  for (let i = 0; i < n * 5; i += 5000) {
    const items = Array.from({ length: Math.min(5000, n * 5 - i) }, (_, k) => ({
      externalId: `a-${i + k}`,
      scheduleExternalId: `s-${Math.floor((i + k) / 5)}`,
      student: { channel: 'main', lineUserId: userId(i + k) },
    }));
    const response = await app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items } });
    if (response.statusCode !== 200) throw new Error(response.body);
  }
  const elapsed = performance.now() - started;
  await app.close();
  await database.close();
  return elapsed;
}

async function measureBareInsert(pgUrl: string | undefined, n: number): Promise<number> {
  const database = await openBenchDatabase(pgUrl, 'bare');
  const { db } = database;
  const now = new Date();
  const channel = await db
    .insertInto('line_channels')
    .values({ label: 'OA', slug: 'main', channel_id: '1', channel_secret: 's', channel_access_token: 't', enabled: true, created_at: now, updated_at: now })
    .returning('id')
    .executeTakeFirstOrThrow();
  const started = performance.now();
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < n; i += 500) {
      await trx
        .insertInto('schedules')
        .values(
          Array.from({ length: Math.min(500, n - i) }, (_, k) => {
            const s = startOf(i + k);
            return { external_id: `s-${i + k}`, title: `class ${i + k}`, starts_at: s, ends_at: new Date(s.getTime() + 3_000_000), trial: false, min_participants: 0, feedback_url: null, cancelled: false, version: 1, meeting_state: 'none' as const, created_at: now, updated_at: now };
          }),
        )
        .execute();
    }
    const members = Math.min(n * 5, 20_000);
    for (let i = 0; i < members; i += 500) {
      await trx
        .insertInto('members')
        .values(Array.from({ length: Math.min(500, members - i) }, (_, k) => ({ channel_id: channel.id, line_user_id: userId(i + k), following: 'unknown' as const, created_at: now, updated_at: now })))
        .execute();
    }
    const scheduleIds = (await trx.selectFrom('schedules').select('id').orderBy('id').execute()).map((r) => r.id);
    const memberIds = (await trx.selectFrom('members').select('id').orderBy('id').execute()).map((r) => r.id);
    for (let i = 0; i < n * 5; i += 500) {
      await trx
        .insertInto('appointments')
        .values(
          Array.from({ length: Math.min(500, n * 5 - i) }, (_, k) => ({
            external_id: `a-${i + k}`,
            schedule_id: scheduleIds[Math.floor((i + k) / 5)] ?? 0,
            member_id: memberIds[(i + k) % memberIds.length] ?? 0,
            cancelled: false,
            created_at: now,
            updated_at: now,
          })),
        )
        .execute();
    }
  });
  const elapsed = performance.now() - started;
  await database.close();
  return elapsed;
}
