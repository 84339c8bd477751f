import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { virtualClock, type VirtualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore, type ConfigStore } from '../../src/config/store.ts';
import type { Dialect } from '../../src/db/database.ts';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { startZoomEmulator, type ZoomEmulator, type ZoomEmulatorOptions } from '../../src/sandbox/zoom/index.ts';
import { createSecretBox, type SecretBox } from '../../src/secrets/secret-box.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import type { ScheduleInput } from '../../src/schedules/schedule-rules.ts';
import { insertZoomAccount } from '../../src/zoom/accounts.ts';
import { zoomClientFor } from '../../src/zoom/wiring.ts';
import type { ZoomClient } from '../../src/zoom/client.ts';
import { createProvisioner, type Provisioner } from '../../src/zoom/provisioner.ts';
import { openTestDatabase, type TestDatabase } from '../support/databases.ts';

export interface HostSpec {
  label: string;
  plan: 'licensed' | 'basic';
  /** Zoom account id; hosts sharing one share its token and per-second limits. Default: one account per host. */
  accountId?: string;
  /** The emulator account's plan for a licensed host (default pro; business has the dashboard API). */
  zoomPlan?: 'pro' | 'business';
}

export interface ZoomWorld {
  database: TestDatabase;
  clock: VirtualClock;
  config: ConfigStore;
  /** The environment `config.reload` reads (set a key, then reload). */
  env: Record<string, string>;
  box: SecretBox;
  em: ZoomEmulator;
  client: ZoomClient;
  metrics: Metrics;
  hostIds: Map<string, number>;
  provisioner(owner?: string): Provisioner;
  schedule(externalId: string, startsAt: string, minutes: number, extra?: Partial<ScheduleInput>): Promise<void>;
  meetingOf(externalId: string): Promise<{ state: string; host: string | null; meetingId: string | null; error: string | null; version: number; meetingVersion: number | null }>;
  close(): Promise<void>;
}

export const silent = pino({ level: 'silent' });

/** The real provisioner on a real database against the Zoom emulator over HTTP, on virtual time. */
export async function openZoomWorld(
  dialect: Dialect,
  hosts: HostSpec[],
  options: { config?: Record<string, unknown>; emulator?: ZoomEmulatorOptions; start?: string } = {},
): Promise<ZoomWorld> {
  const clock = virtualClock(options.start ?? '2026-12-01T00:00:00Z');
  const accounts = new Map<string, HostSpec[]>();
  for (const h of hosts) {
    const id = h.accountId ?? `acc-${h.label}`;
    accounts.set(id, [...(accounts.get(id) ?? []), h]);
  }
  const em = await startZoomEmulator({
    clock,
    createLatencyMs: 0,
    ...options.emulator,
    accounts: [...accounts.entries()].map(([accountId, members]) => ({
      accountId,
      clientId: `cid-${accountId}`,
      clientSecret: `secret-${accountId}`,
      plan: members[0]?.plan === 'basic' ? ('basic' as const) : (members[0]?.zoomPlan ?? ('pro' as const)),
      users: members.map((m) => ({ id: `user-${m.label}`, email: `${m.label}@example.com`, type: m.plan === 'basic' ? (1 as const) : (2 as const) })),
    })),
  });
  const database = await openTestDatabase(dialect);
  const raw = {
    zoom: { apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, retry: { baseDelay: '0ms' }, ...(options.config?.zoom as object) },
    ...Object.fromEntries(Object.entries(options.config ?? {}).filter(([k]) => k !== 'zoom')),
  };
  // What a reload reads: the emulator's addresses, and whatever a test sets (options.config is not re-read).
  const env: Record<string, string> = { SCHEDULER__ZOOM__API_BASE_URL: em.apiBaseUrl, SCHEDULER__ZOOM__OAUTH_URL: em.oauthUrl, SCHEDULER__ZOOM__RETRY__BASE_DELAY: '0ms' };
  const config = createConfigStore(parseConfig(raw, 'test'), { env }, clock);
  const box = createSecretBox(randomBytes(32));
  const metrics = createMetrics();
  const client = zoomClientFor({ db: database.db, clock, config, metrics });
  const hostIds = new Map<string, number>();
  for (const h of hosts) {
    const accountId = h.accountId ?? `acc-${h.label}`;
    const row = await insertZoomAccount(database.db, box, clock, {
      label: h.label,
      plan: h.plan,
      accountId,
      clientId: `cid-${accountId}`,
      clientSecret: `secret-${accountId}`,
      hostUserId: `user-${h.label}`,
    });
    hostIds.set(h.label, row.id);
  }
  const labels = new Map([...hostIds.entries()].map(([label, id]) => [id, label]));
  return {
    database,
    clock,
    config,
    env,
    box,
    em,
    client,
    metrics,
    hostIds,
    provisioner: (owner) =>
      createProvisioner({
        db: database.db,
        box,
        clock,
        config,
        client,
        logger: silent,
        metrics,
        headcount: { policy: () => config.current().monitor.minimumPolicy, rules: () => deliveryRules(config.current()) },
        ...(owner ? { owner } : {}),
      }),
    async schedule(externalId, startsAt, minutes, extra = {}) {
      const start = new Date(startsAt);
      await upsertSchedules(database.db, clock, [
        { externalId, title: `class ${externalId}`, startsAt: start, endsAt: new Date(start.getTime() + minutes * 60_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false, ...extra },
      ]);
    },
    async meetingOf(externalId) {
      const row = await database.db.selectFrom('schedules').selectAll().where('external_id', '=', externalId).executeTakeFirstOrThrow();
      return {
        state: row.meeting_state,
        host: row.meeting_account_id === null ? null : (labels.get(row.meeting_account_id) ?? null),
        meetingId: row.meeting_id,
        error: row.meeting_error,
        version: row.version,
        meetingVersion: row.meeting_version,
      };
    },
    async close() {
      await em.close();
      await database.close();
    },
  };
}
