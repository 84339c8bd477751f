import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { virtualClock, type VirtualClock } from '../../src/clock.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { claimDue, complete, expireOverdue, releaseClaims } from '../../src/deliveries/claim.ts';
import { insertLineChannel } from '../../src/line/channels.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

const user = (n: number): string => `U${n.toString(16).padStart(32, '0')}`;

describe.each(dialects)('outbox and claims on %s', (dialect) => {
  let database: TestDatabase;
  let clock: VirtualClock;
  beforeEach(async () => {
    database = await openTestDatabase(dialect);
    clock = virtualClock('2026-12-01T00:00:00Z');
    await insertLineChannel(database.db, createSecretBox(Buffer.alloc(32, 7)), clock, { label: 'OA', slug: 'main', channelId: '1', channelSecret: 's', channelAccessToken: 't' });
  });
  afterEach(async () => {
    await database.close();
  });

  const klass = (id: string, startsAt: string, extra: { cancelled?: boolean; feedbackUrl?: string | null } = {}) =>
    upsertSchedules(database.db, clock, [
      { externalId: id, title: id, startsAt: new Date(startsAt), endsAt: new Date(Date.parse(startsAt) + 3_000_000), trial: false, minParticipants: 0, feedbackUrl: extra.feedbackUrl === undefined ? 'https://f.example/x' : extra.feedbackUrl, cancelled: extra.cancelled ?? false },
    ]);
  const book = (id: string, schedule: string, n: number, cancelled = false) =>
    upsertAppointments(database.db, clock, [{ externalId: id, scheduleExternalId: schedule, student: { channel: 'main', lineUserId: user(n) }, cancelled }]);
  const deliveries = () => database.db.selectFrom('deliveries').selectAll().orderBy('id').execute();

  it('creates both deliveries with the booking, with retry keys fixed at creation, and moves them with the class', async () => {
    await klass('c1', '2026-12-01T12:00:00Z');
    await book('a1', 'c1', 1);
    const before = await deliveries();
    expect(before.map((d) => [d.kind, new Date(d.due_at).toISOString(), d.state])).toEqual([
      ['meeting_url', '2026-12-01T11:50:00.000Z', 'pending'],
      ['feedback_url', '2026-12-01T12:40:00.000Z', 'pending'],
    ]);
    await klass('c1', '2026-12-01T14:00:00Z');
    const after = await deliveries();
    expect(after.map((d) => new Date(d.due_at).toISOString())).toEqual(['2026-12-01T13:50:00.000Z', '2026-12-01T14:40:00.000Z']);
    expect(after.map((d) => d.retry_key)).toEqual(before.map((d) => d.retry_key));
    expect(after.map((d) => d.schedule_version)).toEqual([2, 2]);
  });

  it('cancels with the class or the booking and revives when it comes back', async () => {
    await klass('c1', '2026-12-01T12:00:00Z');
    await book('a1', 'c1', 1);
    await klass('c1', '2026-12-01T12:00:00Z', { cancelled: true });
    expect((await deliveries()).map((d) => [d.state, d.last_error])).toEqual([
      ['cancelled', 'class cancelled'],
      ['cancelled', 'class cancelled'],
    ]);
    await klass('c1', '2026-12-01T12:00:00Z');
    expect((await deliveries()).map((d) => d.state)).toEqual(['pending', 'pending']);
    await book('a1', 'c1', 1, true);
    expect((await deliveries()).map((d) => d.state)).toEqual(['cancelled', 'cancelled']);
  });

  it('claims only what is due by the clock, oldest first, and fences completion with the lease token', async () => {
    await klass('c1', '2026-12-01T12:00:00Z', { feedbackUrl: null });
    await klass('c2', '2026-12-01T11:00:00Z', { feedbackUrl: null });
    await book('a1', 'c1', 1);
    await book('a2', 'c2', 2);
    await clock.set(new Date('2026-12-01T10:45:00Z'));
    expect(await claimDue(database.db, clock, { owner: 'w', token: 't0', leaseMs: 60_000, limit: 10 })).toEqual([]);
    await clock.set(new Date('2026-12-01T11:50:00Z'));
    const claimed = await claimDue(database.db, clock, { owner: 'w', token: 't1', leaseMs: 60_000, limit: 10 });
    expect(claimed.map((d) => d.dueAt.toISOString())).toEqual(['2026-12-01T10:50:00.000Z', '2026-12-01T11:50:00.000Z']);
    expect(await claimDue(database.db, clock, { owner: 'x', token: 't2', leaseMs: 60_000, limit: 10 })).toEqual([]);
    // The lease expires (worker stalled); another claims; the stalled one's completion is refused.
    await clock.advance(61_000);
    const stolen = await claimDue(database.db, clock, { owner: 'x', token: 't3', leaseMs: 60_000, limit: 10 });
    expect(stolen).toHaveLength(2);
    expect(await complete(database.db, clock, claimed.map((d) => d.id), 't1', { state: 'sent', requestId: 'r-old' })).toBe(0);
    expect(await complete(database.db, clock, stolen.map((d) => d.id), 't3', { state: 'sent', requestId: 'r-new' })).toBe(2);
    expect((await deliveries()).map((d) => [d.state, d.line_request_id, d.attempts])).toEqual([
      ['sent', 'r-new', 2],
      ['sent', 'r-new', 2],
    ]);
  });

  it('a page takes expired leases first, then the oldest pending, and never more than its limit', async () => {
    for (let i = 0; i < 6; i++) await klass(`c${i}`, `2026-12-01T1${i}:00:00Z`, { feedbackUrl: null });
    for (let i = 0; i < 6; i++) await book(`a${i}`, `c${i}`, i);
    await clock.set(new Date('2026-12-01T15:55:00Z'));
    // A worker claims the three oldest and dies; their leases run out.
    const dead = await claimDue(database.db, clock, { owner: 'dead', token: 'td', leaseMs: 60_000, limit: 3 });
    expect(dead.map((d) => d.dueAt.toISOString())).toEqual(['2026-12-01T09:50:00.000Z', '2026-12-01T10:50:00.000Z', '2026-12-01T11:50:00.000Z']);
    await clock.advance(61_000);
    const first = await claimDue(database.db, clock, { owner: 'w', token: 't1', leaseMs: 60_000, limit: 4 });
    expect(first.map((d) => [d.dueAt.toISOString(), d.attempts])).toEqual([
      ['2026-12-01T09:50:00.000Z', 2],
      ['2026-12-01T10:50:00.000Z', 2],
      ['2026-12-01T11:50:00.000Z', 2],
      ['2026-12-01T12:50:00.000Z', 1],
    ]);
    const second = await claimDue(database.db, clock, { owner: 'w', token: 't2', leaseMs: 60_000, limit: 4 });
    expect(second.map((d) => d.dueAt.toISOString())).toEqual(['2026-12-01T13:50:00.000Z', '2026-12-01T14:50:00.000Z']);
    // Rows picked past the limit were let go, not left leased: nothing is claimed twice or stranded.
    expect((await deliveries()).map((d) => d.lease_token)).toEqual(['t1', 't1', 't1', 't1', 't2', 't2']);
  });

  it('claims by id lists longer than either dialect takes as parameters (a timing wheel page of 100,000)', async () => {
    for (let i = 0; i < 3; i++) await klass(`c${i}`, `2026-12-01T1${i}:00:00Z`, { feedbackUrl: null });
    for (let i = 0; i < 3; i++) await book(`a${i}`, `c${i}`, i);
    await clock.set(new Date('2026-12-01T15:55:00Z'));
    const ids = (await deliveries()).map((d) => d.id);
    // The first one's worker dies with it; the wheel fires all three among 70,000 ids of rows since gone.
    await claimDue(database.db, clock, { owner: 'dead', token: 'td', leaseMs: 60_000, limit: 1, ids: [ids[0]!] });
    await clock.advance(61_000);
    const page = [...Array.from({ length: 70_000 }, (_, k) => 1_000_000 + k), ...ids.slice(1), ids[0]!];
    const claimed = await claimDue(database.db, clock, { owner: 'w', token: 't1', leaseMs: 60_000, limit: 100_000, ids: page });
    expect(claimed.map((d) => [d.id, d.attempts])).toEqual([
      [ids[0], 2],
      [ids[1], 1],
      [ids[2], 1],
    ]);
    expect(await claimDue(database.db, clock, { owner: 'w', token: 't2', leaseMs: 60_000, limit: 10, ids: [] })).toEqual([]);
  });

  it('a claimed delivery found too late keeps its last problem in the reason it expired with', async () => {
    await klass('c1', '2026-12-01T12:00:00Z', { feedbackUrl: null });
    await book('a1', 'c1', 1);
    await database.db.updateTable('deliveries').set({ last_error: 'LINE 500: internal error' }).execute();
    await clock.set(new Date('2026-12-01T11:55:00Z'));
    const [claimed] = await claimDue(database.db, clock, { owner: 'w', token: 't1', leaseMs: 60_000, limit: 10 });
    expect(await complete(database.db, clock, [claimed!.id], 't1', { state: 'expired', reason: 'too late: useful until 12:50' })).toBe(1);
    expect((await deliveries())[0]?.last_error).toBe('too late: useful until 12:50 (last problem: LINE 500: internal error)');
  });

  it('expires what is past its window and hands back claims on shutdown', async () => {
    await klass('c1', '2026-12-01T12:00:00Z');
    await book('a1', 'c1', 1);
    await clock.set(new Date('2026-12-01T12:51:00Z')); // class over: the meeting link is useless now
    expect(await expireOverdue(database.db, clock)).toEqual({ meeting_url: 1 });
    const claimed = await claimDue(database.db, clock, { owner: 'w', token: 't', leaseMs: 60_000, limit: 10 });
    expect(claimed.map((d) => d.kind)).toEqual(['feedback_url']);
    expect(await releaseClaims(database.db, 'w')).toBe(1);
    const rows = await deliveries();
    expect(rows.map((d) => [d.kind, d.state, d.attempts])).toEqual([
      ['meeting_url', 'expired', 0],
      ['feedback_url', 'pending', 1], // the attempt stays counted: its request may have been made
    ]);
  });

  it('splits due work between replicas without overlap', async () => {
    for (let i = 0; i < 40; i++) await klass(`c${i}`, '2026-12-01T12:00:00Z', { feedbackUrl: null });
    await upsertAppointments(database.db, clock, Array.from({ length: 400 }, (_, i) => ({ externalId: `a${i}`, scheduleExternalId: `c${i % 40}`, student: { channel: 'main', lineUserId: user(i) }, cancelled: false })));
    await clock.set(new Date('2026-12-01T11:50:00Z'));
    let replica: Database | undefined;
    try {
      replica = dialect === 'postgres' ? await openDatabase(database.url, { schema: database.schema ?? 'public', poolSize: 4 }) : undefined;
      const dbs = [database.db, replica?.db ?? database.db, database.db, replica?.db ?? database.db];
      const seen = new Set<number>();
      let total = 0;
      for (let round = 0; round < 10; round++) {
        const batches = await Promise.all(dbs.map((db, i) => claimDue(db, clock, { owner: `w${i}`, token: randomUUID(), leaseMs: 60_000, limit: 37 })));
        for (const b of batches) {for (const d of b) {
          expect(seen.has(d.id)).toBe(false);
          seen.add(d.id);
          total++;
        }}
      }
      expect(total).toBe(400);
    } finally {
      await replica?.close();
    }
  });
});
