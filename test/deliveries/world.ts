import type { KyselyPlugin } from 'kysely';
import { Registry } from 'prom-client';
import { createDeliveryEngine, type DeliveryEngine } from '../../src/deliveries/loop.ts';
import { createSendPath } from '../../src/deliveries/engine.ts';
import { lineDeliverySender } from '../../src/deliveries/line-sender.ts';
import { createDeliveryMetrics, type DeliveryMetrics } from '../../src/deliveries/metrics.ts';
import { deliveryRules, engineSettings } from '../../src/deliveries/settings.ts';
import type { Db, Dialect } from '../../src/db/database.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { openLineHarness, userId, type LineHarness } from '../line/support.ts';

export { userId };

export interface EngineWorld {
  h: LineHarness;
  metrics: DeliveryMetrics;
  /**
   * `db`: the handle the engine uses (a test may watch its queries); the world's own by default.
   * `senderDb`: the same for the LINE sender's own reads.
   */
  engine(owner?: string, db?: Db, senderDb?: Db): DeliveryEngine;
  /** A class with a meeting link, booked by `students` (user numbers) on channel school-a unless `channel` says otherwise. */
  klass(
    id: string,
    startsAt: string,
    minutes: number,
    students: number[],
    extra?: { cancelled?: boolean; joinUrl?: string | null; feedbackUrl?: string | null; minParticipants?: number; channel?: 'school-a' | 'school-b' },
  ): Promise<void>;
  /** What the provisioner does after a class moved: its meeting is moved to the new time (the new version). */
  meetingMoved(id: string): Promise<void>;
  received(): { to: string; text: string; at: string }[];
  /** Moves virtual time (firing timers on the way) and waits until every engine is idle. */
  at(iso: string): Promise<void>;
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

export async function openEngineWorld(dialect: Dialect, config: ConfigInput = {}, start = '2026-12-01T10:00:00Z'): Promise<EngineWorld> {
  const h = await openLineHarness(dialect, {
    config: { ...config, notifications: { meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' }, ...config.notifications } },
    emulator: { unknownUsers: 'deliver' },
  });
  await h.clock.set(new Date(start));
  const metrics = createDeliveryMetrics(new Registry());
  const engines: DeliveryEngine[] = [];
  const settings = () => engineSettings(h.config.current());
  const settle = async () => {
    for (let i = 0; i < 3; i++) for (const e of engines) await e.idle();
  };
  // Step through time so that I/O started by one wake-up (real PostgreSQL round trips) finishes
  // before the next: the virtual clock cannot see I/O, so the engines are awaited at each step.
  const moveTo = async (target: number) => {
    await settle();
    for (let sameInstant = 0; ; ) {
      const now = h.clock.now().getTime();
      const next = h.clock.nextTimerAt()?.getTime();
      // A wake-up armed for "now" after a slow read (PostgreSQL) is due already: fire it before
      // going on, as real time would, instead of stepping past it (bounded, in case one re-arms at 0).
      if (next !== undefined && next <= now && sameInstant++ < 50) {
        await h.clock.advance(0);
        await settle();
        continue;
      }
      if (now >= target) break;
      sameInstant = 0;
      await h.clock.set(new Date(Math.min(target, Math.max(next ?? target, now + 1))));
      await settle();
    }
  };
  return {
    h,
    metrics,
    engine(owner, db = h.database.db, senderDb = h.database.db) {
      const sendPath = createSendPath({
        db,
        clock: h.clock,
        settings,
        logger: h.logger,
        metrics,
        sender: lineDeliverySender({ db: senderDb, config: h.config, send: h.line.send, imagemap: h.line.imagemap }),
        ...(owner ? { owner } : {}),
      });
      const engine = createDeliveryEngine({ db, clock: h.clock, settings, logger: h.logger, sendPath });
      engines.push(engine);
      return engine;
    },
    async klass(id, startsAt, minutes, students, extra = {}) {
      const start = new Date(startsAt);
      const rules = deliveryRules(h.config.current());
      await upsertSchedules(
        h.database.db,
        h.clock,
        [{ externalId: id, title: `Class ${id}`, startsAt: start, endsAt: new Date(start.getTime() + minutes * 60_000), trial: false, minParticipants: extra.minParticipants ?? 0, feedbackUrl: extra.feedbackUrl === undefined ? `https://forms.example.com/${id}` : extra.feedbackUrl, cancelled: extra.cancelled ?? false }],
        { rules },
      );
      await h.database.db
        .updateTable('schedules')
        .set((eb) => ({ join_url: extra.joinUrl === undefined ? `https://zoom.example.com/j/${id}` : extra.joinUrl, meeting_state: 'ready', meeting_version: eb.ref('version') }))
        .where('external_id', '=', id)
        .execute();
      if (students.length) {
        await upsertAppointments(
          h.database.db,
          h.clock,
          students.map((n) => ({ externalId: `${id}-${n}`, scheduleExternalId: id, student: { channel: extra.channel ?? 'school-a', lineUserId: userId(n) }, cancelled: false })),
          { rules },
        );
      }
    },
    async meetingMoved(id) {
      await h.database.db.updateTable('schedules').set((eb) => ({ meeting_version: eb.ref('version') })).where('external_id', '=', id).execute();
    },
    received() {
      return h.emulator.received().map((r) => {
        const first = r.messages[0] as { text?: string; altText?: string } | undefined;
        return { to: Array.isArray(r.to) ? r.to.join(',') : String(r.to), text: first?.text ?? first?.altText ?? '', at: new Date(r.at).toISOString() };
      });
    },
    async at(iso) {
      await moveTo(new Date(iso).getTime());
    },
    async advance(ms) {
      await moveTo(h.clock.now().getTime() + ms);
    },
    async close() {
      for (const e of engines) await e.stop().catch(() => undefined);
      await h.close();
    },
  };
}

/**
 * The engine's claim statements (the only UPDATE with a CTE) as they reach the real database: how
 * many so far, and the most in flight at once. Pass `db` to `engine(owner, db)`.
 */
export function watchClaims(db: Db): { db: Db; count(): number; mostAtOnce(): number } {
  let count = 0;
  let inFlight = 0;
  let most = 0;
  const claims = new Set<unknown>();
  const plugin: KyselyPlugin = {
    transformQuery({ node, queryId }) {
      if (node.kind === 'UpdateQueryNode' && node.with) {
        claims.add(queryId);
        count++;
        most = Math.max(most, ++inFlight);
      }
      return node;
    },
    transformResult({ queryId, result }) {
      if (claims.delete(queryId)) inFlight--;
      return Promise.resolve(result);
    },
  };
  return { db: db.withPlugin(plugin), count: () => count, mostAtOnce: () => most };
}
