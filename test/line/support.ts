import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { virtualClock, type VirtualClock } from '../../src/clock.ts';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createConfigStore, type ConfigStore } from '../../src/config/store.ts';
import type { Db, Dialect } from '../../src/db/database.ts';
import { claimDue } from '../../src/deliveries/claim.ts';
import { buildHttpApp } from '../../src/http/app.ts';
import { insertLineChannel, type LineChannel } from '../../src/line/channels.ts';
import { startLine, type LineRuntime } from '../../src/line/runtime.ts';
import type { Logger } from '../../src/logger.ts';
import { capturingLogger } from '../support/logs.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startLineEmulator, type LineEmulator, type LineEmulatorOptions } from '../../src/sandbox/line/index.ts';
import { createSecretBox, type SecretBox } from '../../src/secrets/secret-box.ts';
import { openTestDatabase, type TestDatabase } from '../support/databases.ts';

export const WEBHOOK_DOMAIN = 'line.example.test';
export const PUBLIC_BASE_URL = 'https://sched.example.test';

export const userId = (n: number): string => `U${n.toString(16).padStart(32, '0')}`;
export const ALICE = userId(0xa11ce);
export const BOB = userId(0xb0b);
export const CAROL = userId(0xca201);

export interface HarnessChannel {
  /** Our row. */
  row: LineChannel;
  /** The emulator's view: LINE channel id, secret, token, bot user id. */
  emulatorId: string;
  secret: string;
  token: string;
  botUserId: string;
}

export interface LineHarness {
  database: TestDatabase;
  clock: VirtualClock;
  config: ConfigStore;
  box: SecretBox;
  logger: Logger;
  logs: string[];
  emulator: LineEmulator;
  line: LineRuntime;
  app: FastifyInstance;
  /** Two channels, "school-a" and "school-b", each followed (at LINE) by Alice, Bob and Carol. */
  a: HarnessChannel;
  b: HarnessChannel;
  /** http://127.0.0.1:port, once `listen()` was called. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  config?: ConfigInput;
  /** A YAML file to load (and reload) instead of `config`. */
  configFile?: string;
  emulator?: Omit<LineEmulatorOptions, 'clock' | 'channels'>;
  /** Whether our rows carry the bot user id (default true). */
  knownBotUserIds?: boolean;
  /** Jitter for backoff (default 0.5, so delays are predictable). */
  random?: () => number;
  /** The handle the LINE runtime gets instead of the harness's own (a test wraps it to count its queries). */
  lineDb?: (db: Db) => Db;
}

/**
 * The real LINE side on a real database: the emulator (on the same virtual clock) as LINE, our two
 * channels stored encrypted, the runtime started, and the real Fastify app.
 */
export async function openLineHarness(dialect: Dialect, options: HarnessOptions = {}): Promise<LineHarness> {
  const database = await openTestDatabase(dialect);
  const clock = virtualClock('2026-12-01T00:00:00Z');
  const users = [ALICE, BOB, CAROL].map((id, i) => ({ userId: id, displayName: ['Alice', 'Bob', 'Carol'][i] ?? 'x' }));
  const emulator = await startLineEmulator({ ...options.emulator, clock, channels: [{ users }, { users }] });
  let config: ConfigStore;
  if (options.configFile) {
    // A real file, so tests can reload it; the emulator's address comes from the environment.
    const source = { file: options.configFile, env: { SCHEDULER__LINE__API_BASE_URL: emulator.url } };
    config = createConfigStore(loadConfig(source), source, clock);
  } else {
    const raw: ConfigInput = {
      ...options.config,
      http: { publicBaseUrl: PUBLIC_BASE_URL, ...options.config?.http },
      line: { webhookDomain: WEBHOOK_DOMAIN, ...options.config?.line, apiBaseUrl: emulator.url },
    };
    config = createConfigStore(parseConfig(raw, 'test'), { env: {} }, clock);
  }
  const box = createSecretBox(randomBytes(32));
  const { logger, logs } = capturingLogger();

  const channels: HarnessChannel[] = [];
  for (const [i, emu] of emulator.channels().entries()) {
    const slug = i === 0 ? 'school-a' : 'school-b';
    const row = await insertLineChannel(database.db, box, clock, {
      label: slug,
      slug,
      channelId: emu.channelId,
      channelSecret: emu.channelSecret,
      channelAccessToken: emu.accessToken,
      ...(options.knownBotUserIds === false ? {} : { botUserId: emu.botUserId }),
    });
    channels.push({ row, emulatorId: emu.channelId, secret: emu.channelSecret, token: emu.accessToken, botUserId: emu.botUserId });
  }
  const [a, b] = channels;
  if (!a || !b) throw new Error('harness: two channels expected');

  const line = await startLine({ db: options.lineDb ? options.lineDb(database.db) : database.db, box, clock, config, logger, random: options.random ?? (() => 0.5) });
  line.start();
  const app = await buildHttpApp({
    db: database.db,
    clock,
    box,
    config,
    logger,
    metrics: createMetrics(),
    adminToken: undefined,
    readiness: async () => ({ ready: true, checks: {} }),
    line,
  });
  await app.ready();

  return {
    database,
    clock,
    config,
    box,
    logger,
    logs,
    emulator,
    line,
    app,
    a,
    b,
    async listen() {
      await app.listen({ host: '127.0.0.1', port: 0 });
      return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    },
    async close() {
      await app.close();
      await line.stop();
      await emulator.close();
      await database.close();
    },
  };
}

/** A schedule, an appointment and a delivery row (with its retry key fixed now), as the engine will have them. */
export async function createDelivery(
  h: LineHarness,
  input: { channel: HarnessChannel; lineUserId: string; kind?: 'meeting_url' | 'feedback_url'; title?: string; startsAt?: Date; joinUrl?: string },
): Promise<{ deliveryId: number; memberId: number; retryKey: string; scheduleId: number }> {
  const { db } = h.database;
  const now = h.clock.now();
  const startsAt = input.startsAt ?? new Date('2026-12-01T11:00:00Z');
  const schedule = await db
    .insertInto('schedules')
    .values({
      external_id: `s-${randomUUID()}`,
      title: input.title ?? '英文會話 A1',
      starts_at: startsAt,
      ends_at: new Date(startsAt.getTime() + 50 * 60_000),
      trial: false,
      min_participants: 0,
      feedback_url: 'https://forms.example.com/feedback?s=1',
      cancelled: false,
      version: 1,
      meeting_state: 'ready',
      meeting_version: 1,
      join_url: input.joinUrl ?? 'https://zoom.us/j/81234567890?pwd=abc',
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  const member = await db
    .insertInto('members')
    .values({ channel_id: input.channel.row.id, line_user_id: input.lineUserId, following: 'unknown', created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(['channel_id', 'line_user_id']).doUpdateSet({ updated_at: now }))
    .returning('id')
    .executeTakeFirstOrThrow();
  const appointment = await db
    .insertInto('appointments')
    .values({ external_id: `a-${randomUUID()}`, schedule_id: schedule.id, member_id: member.id, cancelled: false, created_at: now, updated_at: now })
    .returning('id')
    .executeTakeFirstOrThrow();
  const retryKey = randomUUID();
  const delivery = await db
    .insertInto('deliveries')
    .values({
      appointment_id: appointment.id,
      kind: input.kind ?? 'meeting_url',
      due_at: new Date(startsAt.getTime() - 10 * 60_000),
      not_after: startsAt,
      available_at: new Date(startsAt.getTime() - 10 * 60_000),
      state: 'pending',
      attempts: 0,
      retry_key: retryKey,
      schedule_version: 1,
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { deliveryId: delivery.id, memberId: member.id, retryKey, scheduleId: schedule.id };
}

/**
 * Claims these deliveries as the delivery engine does, once their time has come (the clock is moved
 * to the latest of their due times if it is earlier), and returns the claim's lease token.
 */
export async function claimDeliveries(h: LineHarness, deliveryIds: readonly number[]): Promise<string> {
  const rows = await h.database.db.selectFrom('deliveries').select('available_at').where('id', 'in', deliveryIds).execute();
  const due = Math.max(...rows.map((r) => new Date(r.available_at).getTime()));
  if (due > h.clock.now().getTime()) await h.clock.set(new Date(due));
  const token = randomUUID();
  const claimed = await claimDue(h.database.db, h.clock, { owner: 'test', token, leaseMs: 60_000, limit: deliveryIds.length, ids: deliveryIds });
  if (claimed.length !== new Set(deliveryIds).size) throw new Error(`claimed ${claimed.length} of ${deliveryIds.length} deliveries`);
  return token;
}

/** Row count of a table. */
export async function countRows(h: LineHarness, table: 'line_events' | 'members' | 'line_requests' | 'line_multicasts'): Promise<number> {
  const row = await h.database.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function memberOf(h: LineHarness, channel: HarnessChannel, lineUserId: string) {
  return h.database.db
    .selectFrom('members')
    .selectAll()
    .where('channel_id', '=', channel.row.id)
    .where('line_user_id', '=', lineUserId)
    .executeTakeFirst();
}
