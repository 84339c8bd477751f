import { sql, type RootOperationNode } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isConcurrencyFailure, type Db } from '../../src/db/database.ts';
import { upsertAppointments, type AppointmentInput } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { TEST_DATABASE_URL } from '../support/databases.ts';
import { pauseAfter } from '../support/pause.ts';
import { openEngineWorld, userId, type EngineWorld } from '../deliveries/world.ts';

/** The backend of a transaction, to see who waits on it. */
async function backendOf(trx: Db): Promise<number> {
  return Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid);
}

/** Whether some session is waiting on a lock held by backend `pid` (only this test's sessions can be). */
async function someoneWaitsOn(db: Db, pid: number): Promise<boolean> {
  return Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`.execute(db)).rows[0]?.n ?? 0) > 0;
}

const outcome = (p: Promise<unknown>): Promise<string> => p.then(
  () => 'ok',
  (e: unknown) => (isConcurrencyFailure(e) ? `concurrency failure ${(e as { code?: string }).code ?? ''}` : `other: ${String(e)}`),
);

/**
 * Runs `first` in a transaction paused right after the statement `matches` picks out, then starts
 * `second`, and lets `first` go on once `second` waits on one of its locks: the interleaving in which
 * writers taking rows in different orders deadlock. Returns how each ended.
 */
async function race(db: Db, matches: (node: RootOperationNode) => boolean, first: (trx: Db) => Promise<unknown>, second: () => Promise<unknown>): Promise<string[]> {
  const pause = pauseAfter(matches, { once: true });
  let pid = 0;
  const one = outcome(
    db.transaction().execute(async (trx) => {
      pid = await backendOf(trx);
      return first(trx.withPlugin(pause.plugin));
    }),
  );
  await pause.atGate;
  const two = outcome(second());
  try {
    await vi.waitFor(async () => expect(await someoneWaitsOn(db, pid)).toBe(true), { timeout: 10_000, interval: 5 });
  } finally {
    pause.open();
  }
  return Promise.all([one, two]);
}

// SQLite runs one write transaction at a time: only PostgreSQL can take locks in a cycle.
describe.runIf(TEST_DATABASE_URL)('the order writers lock rows in, on postgres', () => {
  const dialect = 'postgres';
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });
  const klass = (id: string, startsAt: string) => ({ externalId: id, title: `Class ${id}`, startsAt: new Date(startsAt), endsAt: new Date(new Date(startsAt).getTime() + 50 * 60_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false });
  const booking = (externalId: string, schedule: string, student: number): AppointmentInput => ({ externalId, scheduleExternalId: schedule, student: { channel: 'school-a', lineUserId: userId(student) }, cancelled: false });

  /** c1 and c2 empty, c3 with bookings c3-1 and c3-2 (students 1 and 2), which the tests move. */
  const threeClasses = async (): Promise<Db> => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [], { feedbackUrl: null });
    await w.klass('c3', '2026-12-01T16:00:00Z', 50, [1, 2], { feedbackUrl: null });
    return w.h.database.db;
  };

  it('a booking batch moving bookings into classes in its own order does not deadlock with a schedule batch moving those classes', async () => {
    const db = await threeClasses();
    // The booking batch pauses right after its first write of a booking (a booking written into a
    // class holds that class, as the foreign key check does)...
    const outcomes = await race(
      db,
      (node) => {
        const text = JSON.stringify(node);
        return (node.kind === 'UpdateQueryNode' && text.includes('"appointments"')) || (node.kind === 'RawNode' && /update appointments/i.test(text));
      },
      // ...which moves c3-1 to c2 and c3-2 to c1, in the platform's order (c2 has the higher id).
      (trx) => upsertAppointments(trx, w.h.clock, [booking('c3-1', 'c2', 1), booking('c3-2', 'c1', 2)]),
      // Meanwhile both classes move in one schedule batch (which holds them in id order: c1, then c2).
      () => upsertSchedules(db, w.h.clock, [klass('c1', '2026-12-01T12:30:00Z'), klass('c2', '2026-12-01T14:30:00Z')]),
    );
    expect(outcomes).toEqual(['ok', 'ok']);
    const due = await db
      .selectFrom('deliveries')
      .innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id')
      .select(['appointments.external_id', 'deliveries.due_at'])
      .orderBy('appointments.external_id')
      .execute();
    expect(due.map((d) => [d.external_id, new Date(d.due_at).toISOString()])).toEqual([
      ['c3-1', '2026-12-01T14:20:00.000Z'],
      ['c3-2', '2026-12-01T12:20:00.000Z'],
    ]);
  });

  it('a booking batch holds every class it writes into before its first booking write, so a schedule batch on them waits for it whole', async () => {
    const db = await threeClasses();
    // Paused once it has locked the bookings it writes, before writing any: a writer that took each
    // class only as it wrote a booking into it (in one statement or many) would hold none of them yet.
    const outcomes = await race(
      db,
      (node) => node.kind === 'SelectQueryNode' && JSON.stringify(node).includes('"appointments"') && /"For(NoKey)?Update"/.test(JSON.stringify(node)),
      (trx) => upsertAppointments(trx, w.h.clock, [booking('c3-1', 'c2', 1), booking('c3-2', 'c1', 2)]),
      () => upsertSchedules(db, w.h.clock, [klass('c1', '2026-12-01T12:30:00Z'), klass('c2', '2026-12-01T14:30:00Z')]),
    );
    expect(outcomes).toEqual(['ok', 'ok']);
  });

  it("a booking moved out of a class (its feedback link cancelled) does not deadlock with a schedule batch re-timing that class's links", async () => {
    w = await openEngineWorld(dialect);
    const { db } = w.h.database;
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: 'https://f.example/1' });
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [], { feedbackUrl: null });
    // The booking batch pauses after its first write of a delivery (cancelling the feedback link c2 has none of)...
    const outcomes = await race(
      db,
      (node) => node.kind === 'UpdateQueryNode' && JSON.stringify(node).includes('"deliveries"'),
      (trx) => upsertAppointments(trx, w.h.clock, [booking('c1-1', 'c2', 1)]),
      // ...while c1 moves, and its sync re-times the booking's links (the meeting link first).
      () => upsertSchedules(db, w.h.clock, [{ ...klass('c1', '2026-12-01T12:30:00Z'), feedbackUrl: 'https://f.example/1' }]),
    );
    expect(outcomes).toEqual(['ok', 'ok']);
  });

  it('two schedule batches of overlapping classes, each longer than a lock chunk, do not deadlock', async () => {
    w = await openEngineWorld(dialect);
    const { db } = w.h.database;
    const at = (i: number, minutes = 0) => klass(`k${i}`, new Date(Date.parse('2026-12-02T00:00:00Z') + i * 3_600_000 + minutes * 60_000).toISOString());
    const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
    await upsertSchedules(db, w.h.clock, range(0, 1000).map((i) => at(i)));
    // The first batch (k0-k599) pauses once it holds its classes...
    const outcomes = await race(
      db,
      (node) => node.kind === 'SelectQueryNode' && JSON.stringify(node).includes('"schedules"') && /"ForUpdate"/.test(JSON.stringify(node)),
      (trx) => upsertSchedules(trx, w.h.clock, range(0, 600).map((i) => at(i, 5))),
      // ...while the second (k500-k999, then k0-k99) wants some of those and holds the rest of the first's.
      () => upsertSchedules(db, w.h.clock, [...range(500, 1000), ...range(0, 100)].map((i) => at(i, 10))),
    );
    expect(outcomes).toEqual(['ok', 'ok']);
  });

  it('two booking batches bringing the same new students in opposite orders do not deadlock', async () => {
    w = await openEngineWorld(dialect);
    const { db } = w.h.database;
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [], { feedbackUrl: null });
    // More students than one insert of members takes (500): the first batch pauses after its first
    // insert, holding the students it inserted until it commits...
    const students = Array.from({ length: 1000 }, (_, i) => i + 1);
    const outcomes = await race(
      db,
      (node) => node.kind === 'InsertQueryNode' && JSON.stringify(node).includes('"members"'),
      (trx) => upsertAppointments(trx, w.h.clock, students.map((n) => booking(`a-${n}`, 'c1', n))),
      // ...while the second brings the same students in the opposite order (into another class).
      () => upsertAppointments(db, w.h.clock, [...students].reverse().map((n) => booking(`b-${n}`, 'c2', n))),
    );
    expect(outcomes).toEqual(['ok', 'ok']);
    const counts = await db.selectFrom('members').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(Number(counts.n)).toBe(1000);
  });
});
