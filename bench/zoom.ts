import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { sql } from 'kysely';
import { systemClock } from '../src/clock.ts';
import { parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { createMetrics } from '../src/metrics.ts';
import { startZoomEmulator } from '../src/sandbox/zoom/index.ts';
import { createSecretBox } from '../src/secrets/secret-box.ts';
import { upsertSchedules } from '../src/schedules/schedules.ts';
import type { ScheduleInput } from '../src/schedules/schedule-rules.ts';
import { insertZoomAccount } from '../src/zoom/accounts.ts';
import { createProvisioner } from '../src/zoom/provisioner.ts';
import { zoomClientFor } from '../src/zoom/wiring.ts';
import { valueOf } from './args.ts';
import { openBenchDatabase } from './database.ts';

/**
 * Provision N schedules spread over a week onto 20 licensed + 5 basic hosts (each its own Zoom
 * account), against the emulator with 1 s create latency and Pro/Free rate limits, in one pass.
 * Options: --schedules N (1000), --latency MS (1000), --concurrency N (32), --postgres URL (default: SQLite file).
 * Prints wall time against the lower bound set by latency and our concurrency caps, requests per
 * meeting, and checks: no duplicate meetings, no overlapping hosts, no basic meeting over 40 min.
 */
export async function run(args: string[]): Promise<void> {
  const n = Number(valueOf(args, '--schedules') ?? 1000);
  const latencyMs = Number(valueOf(args, '--latency') ?? 1000);
  const pgUrl = valueOf(args, '--postgres');
  const concurrency = Number(valueOf(args, '--concurrency') ?? 32);
  const clock = systemClock();
  const licensed = 20;
  const basic = 5;
  const hosts = [...Array.from({ length: licensed }, (_, i) => ({ label: `pro-${i}`, plan: 'licensed' as const })), ...Array.from({ length: basic }, (_, i) => ({ label: `free-${i}`, plan: 'basic' as const }))];
  const em = await startZoomEmulator({
    clock,
    createLatencyMs: latencyMs,
    rateLimits: true,
    accounts: hosts.map((h) => ({ accountId: `acc-${h.label}`, clientId: `cid-${h.label}`, clientSecret: `sec-${h.label}`, plan: h.plan === 'basic' ? ('basic' as const) : ('pro' as const), users: [{ id: `user-${h.label}`, email: `${h.label}@example.com` }] })),
  });
  const database = await openBenchDatabase(pgUrl, 'zoom', { poolSize: 10 });
  try {
    const config = createConfigStore(parseConfig({ zoom: { apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, provisioning: { horizon: '8d', concurrency } } }, 'bench'), { env: {} }, clock);
    const box = createSecretBox(randomBytes(32));
    const metrics = createMetrics();
    for (const h of hosts) {
      await insertZoomAccount(database.db, box, clock, { label: h.label, plan: h.plan, accountId: `acc-${h.label}`, clientId: `cid-${h.label}`, clientSecret: `sec-${h.label}`, hostUserId: `user-${h.label}` });
    }
    await upsertSchedules(database.db, clock, weekOfClasses(n, clock.now()));
    const provisioner = createProvisioner({ db: database.db, box, clock, config, client: zoomClientFor({ db: database.db, clock, config, metrics }), logger: pino({ level: 'warn' }), metrics });

    const started = performance.now();
    let report = await provisioner.runPass();
    const outcomes = { ...report.outcomes };
    // Anything retried later (e.g. after a transient failure) would show up in a second pass.
    report = await provisioner.runPass();
    const seconds = (performance.now() - started) / 1000;

    const cfg = config.current().zoom.provisioning;
    const meetings = em.meetings().filter((m) => !m.deleted);
    const perAccount = new Map<string, number>();
    for (const m of meetings) perAccount.set(m.accountId, (perAccount.get(m.accountId) ?? 0) + 1);
    const latency = latencyMs / 1000;
    const bound = Math.max(
      (meetings.length * latency) / cfg.concurrency,
      ...[...perAccount.values()].map((k) => (k * latency) / cfg.perAccountConcurrency),
      // Per-second create limits per account: Pro 20/s (Medium), Free 2/s.
      ...[...perAccount.entries()].map(([acc, k]) => k / (acc.includes('free') ? 2 : 20)),
    );
    const apiRequests = em.requests().filter((r) => r.path.startsWith('/v2/')).length;
    const tokens = hosts.reduce((sum, h) => sum + em.tokenRequests(`acc-${h.label}`), 0);
    const markers = new Map<string, number>();
    for (const m of meetings) markers.set(m.agenda, (markers.get(m.agenda) ?? 0) + 1);
    const duplicates = [...markers.values()].filter((c) => c > 1).length;
    const overlaps = em.overlaps({ activeOnly: true }).length;
    const basicOver40 = em.violations().filter((v) => v.kind === 'basic-over-40-min').length;
    const states = await database.db.selectFrom('schedules').select(['meeting_state', sql<number>`count(*)`.as('n')]).groupBy('meeting_state').execute();

    console.log(`dialect: ${database.dialect}; ${n} schedules over 7 days; ${licensed} licensed + ${basic} basic hosts (one Zoom account each); create latency ${latencyMs} ms; Pro/Free rate limits on`);
    console.log(`concurrency: ${cfg.concurrency} overall, ${cfg.perAccountConcurrency} per account`);
    console.log(`outcomes: ${JSON.stringify(outcomes)}; second pass: ${JSON.stringify(report.outcomes)}; states: ${states.map((s) => `${s.meeting_state}=${s.n}`).join(' ')}`);
    console.log(`wall time: ${seconds.toFixed(1)} s; lower bound ${bound.toFixed(1)} s; ratio ${(seconds / bound).toFixed(2)}x (goal <= 1.25x)`);
    console.log(`requests per meeting: ${(apiRequests / Math.max(1, meetings.length)).toFixed(3)} API (+ ${tokens} token requests in all) (goal <= 1.1)`);
    console.log(`duplicates: ${duplicates}; overlapping hosts: ${overlaps}; basic meetings over 40 min: ${basicOver40}; 429s seen: ${em.requests().filter((r) => r.status === 429).length}`);
  } finally {
    await database.close();
    await em.close();
  }
}

/** Classes on the hour 08:00–22:00 UTC for 7 days; 15% are 30-minute trials, the rest 50 minutes. */
function weekOfClasses(n: number, now: Date): ScheduleInput[] {
  const day0 = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
  const slots: number[] = [];
  for (let d = 0; d < 7; d++) for (let h = 8; h <= 22; h++) slots.push(day0 + d * 86_400_000 + h * 3_600_000);
  return Array.from({ length: n }, (_, i) => {
    const start = slots[i % slots.length] ?? day0;
    const trial = i % 7 === 3;
    return { externalId: `bench-${i}`, title: `Class ${i}`, startsAt: new Date(start), endsAt: new Date(start + (trial ? 30 : 50) * 60_000), trial, minParticipants: 0, feedbackUrl: null, cancelled: false };
  });
}
