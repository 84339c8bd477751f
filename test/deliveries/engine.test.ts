import { sql, type KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, watchClaims, type EngineWorld } from './world.ts';

const STRATEGIES = ['all-at-once', 'batched', 'timing-wheel'] as const;

describe.each(dialects)('delivery engine on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });
  const leaseEnd = async () => {
    const row = await w.h.database.db.selectFrom('deliveries').select('lease_expires_at').executeTakeFirstOrThrow();
    return row.lease_expires_at === null ? null : new Date(row.lease_expires_at).toISOString();
  };

  it.each(STRATEGIES)('%s: sends each delivery once, at its due time (continuous trigger)', async (strategy) => {
    w = await openEngineWorld(dialect, { notifications: { strategy, batchSize: 2 } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2, 3]);
    await w.klass('c2', '2026-12-01T12:30:00Z', 50, [4]);
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:49:59Z');
    expect(w.received()).toEqual([]);
    await w.at('2026-12-01T11:50:00Z');
    const first = w.received();
    expect(first.map((r) => r.to).sort()).toEqual([userId(1), userId(2), userId(3)].sort());
    expect(first.every((r) => Date.parse(r.at) - Date.parse('2026-12-01T11:50:00Z') < 1000)).toBe(true);
    expect(first[0]?.text).toContain('https://zoom.example.com/j/c1');
    expect(first[0]?.text).toContain('20:00'); // local time in Asia/Taipei
    await w.at('2026-12-01T12:45:00Z');
    const all = w.received();
    expect(all.filter((r) => r.text.includes('zoom.example.com'))).toHaveLength(4);
    expect(all.filter((r) => r.text.includes('forms.example.com/c1'))).toHaveLength(3); // due 12:40
    const states = await w.h.database.db.selectFrom('deliveries').select(['state', 'sent_at', 'due_at']).where('state', '=', 'sent').execute();
    for (const s of states) {
      const late = new Date(s.sent_at as string).getTime() - new Date(s.due_at).getTime();
      expect(late).toBeGreaterThanOrEqual(0); // never early
      expect(late).toBeLessThan(1000);
    }
  });

  it.each(STRATEGIES)('%s: a database clock a little behind ours delays a due delivery by at most that and a short pause, without spinning', async (strategy) => {
    w = await openEngineWorld(dialect, { notifications: { strategy } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    w.h.clock.databaseOffsetMs = -100;
    const claims = watchClaims(w.h.database.db);
    await w.engine(undefined, claims.db).start();
    await w.at('2026-12-01T11:49:59Z');
    const before = claims.count();
    await w.at('2026-12-01T11:50:01Z');
    const sent = w.received();
    expect(sent).toHaveLength(1);
    const late = Date.parse(sent[0]?.at ?? '') - Date.parse('2026-12-01T11:50:00Z');
    expect(late).toBeGreaterThanOrEqual(100); // never before the database says it is due
    expect(late).toBeLessThanOrEqual(350);
    expect(claims.count() - before).toBeLessThanOrEqual(4);
  });

  it.each(['cron', 'continuous'] as const)('%s: one failed read while arming the next wake-up does not stop the engine', async (trigger) => {
    w = await openEngineWorld(dialect, { notifications: { trigger } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // The read of the next lease expiry fails once (a dropped connection), at a refresh.
    let failNext = false;
    const flaky: KyselyPlugin = {
      transformQuery({ node }) {
        if (failNext && node.kind === 'SelectQueryNode' && JSON.stringify(node).includes('lease_expires_at')) {
          failNext = false;
          throw new Error('connection reset (injected)');
        }
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    };
    await w.engine(undefined, w.h.database.db.withPlugin(flaky)).start();
    await w.at('2026-12-01T10:00:10Z');
    failNext = true;
    await w.at('2026-12-01T10:01:00Z');
    expect(failNext).toBe(false);
    await w.at('2026-12-01T11:51:00Z');
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T11:50:00.000Z']);
  });

  it('sends a class moved after the timing wheel loaded it at the new time only', async () => {
    w = await openEngineWorld(dialect, { notifications: { strategy: 'timing-wheel' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    expect(engine.wheelSize()).toBe(1);
    // Moved an hour later, through the outbox, telling the engine (as the admin API does).
    await upsertSchedules(
      w.h.database.db,
      w.h.clock,
      [{ externalId: 'c1', title: 'Class c1', startsAt: new Date('2026-12-01T13:00:00Z'), endsAt: new Date('2026-12-01T13:50:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false }],
      { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) },
    );
    await w.meetingMoved('c1');
    await w.at('2026-12-01T12:30:00Z');
    expect(w.received()).toEqual([]);
    await w.at('2026-12-01T12:50:00Z');
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T12:50:00.000Z']);
  });

  it.each(STRATEGIES)('%s: retries a failed send with the same key after its backoff, not at the next refresh', async (strategy) => {
    w = await openEngineWorld(dialect, { notifications: { strategy, pollInterval: '10m' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { status: 500 } });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    expect(w.received()).toEqual([]);
    await w.at('2026-12-01T11:50:05Z'); // backoff is about 0.5 s here, far below pollInterval
    expect(w.received()).toHaveLength(1);
    const row = await w.h.database.db.selectFrom('deliveries').selectAll().executeTakeFirstOrThrow();
    expect(row.state).toBe('sent');
    expect(row.attempts).toBe(2);
  });

  it('does not send to cancelled bookings or classes, nor to students who unfollowed', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2, 3], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T12:00:00Z', 50, [4], { feedbackUrl: null, cancelled: true });
    const { upsertAppointments } = await import('../../src/schedules/appointments.ts');
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-2', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(2) }, cancelled: true }]);
    await w.h.database.db.updateTable('members').set({ following: 'unfollowed' }).where('line_user_id', '=', userId(3)).execute();
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    expect(w.received().map((r) => r.to)).toEqual([userId(1)]);
    const rows = await w.h.database.db.selectFrom('deliveries').innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id').select(['appointments.external_id', 'deliveries.state', 'deliveries.last_error']).orderBy('appointments.external_id').execute();
    // c2 was cancelled before it was booked: its booking never got deliveries at all.
    expect(rows.map((r) => [r.external_id, r.state])).toEqual([
      ['c1-1', 'sent'],
      ['c1-2', 'cancelled'],
      ['c1-3', 'skipped'],
    ]);
    expect(rows.find((r) => r.external_id === 'c1-3')?.last_error).toMatch(/unfollowed/);
  });

  it('holds a delivery whose class has no meeting link, with an alert, and expires it at the end of class', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null, joinUrl: null });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:55:00Z');
    expect(w.received()).toEqual([]);
    expect((await w.metrics.alerts.get()).values[0]?.value).toBeGreaterThan(0);
    const row = await w.h.database.db.selectFrom('deliveries').selectAll().executeTakeFirstOrThrow();
    expect(row.state).toBe('pending');
    expect(row.last_error).toMatch(/no Zoom meeting link/);
    await w.at('2026-12-01T12:51:00Z');
    // The reason it expired says what kept it: the missing link, not only "missed".
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).executeTakeFirstOrThrow()).toMatchObject({ state: 'expired', last_error: expect.stringMatching(/^missed: .*last problem: no Zoom meeting link yet for class c1/) });
  });

  it('holds the links of a channel disabled for a moment at the due time (a token rotated), with an alert, and sends them once it is back', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2, 3], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:49:00Z');
    await w.h.database.db.updateTable('line_channels').set({ enabled: false }).where('slug', '=', 'school-a').execute();
    await w.at('2026-12-01T11:51:00Z');
    expect(w.received()).toEqual([]);
    expect((await w.metrics.alerts.get()).values.find((v) => v.labels.reason === 'channel_disabled')?.value).toBeGreaterThan(0);
    const held = await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).execute();
    expect(held.every((r) => r.state === 'pending' && /channel of this student is disabled/.test(r.last_error ?? ''))).toBe(true);
    await w.h.database.db.updateTable('line_channels').set({ enabled: true }).where('slug', '=', 'school-a').execute();
    await w.at('2026-12-01T12:10:00Z');
    expect(w.received().map((r) => r.to).sort()).toEqual([userId(1), userId(2), userId(3)].sort());
    expect((await w.h.database.db.selectFrom('deliveries').select('state').execute()).map((r) => r.state)).toEqual(['sent', 'sent', 'sent']);
  });

  it('fails the deliveries of a message LINE would refuse (a link past its limits) with the reason, and raises an alert', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2], { feedbackUrl: null, joinUrl: `https://zoom.example.com/j/1?pwd=${'x'.repeat(5000)}` });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    expect(w.received()).toEqual([]);
    const rows = await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).execute();
    expect(rows.map((r) => r.state)).toEqual(['failed', 'failed']);
    expect(rows[0]?.last_error).toMatch(/text/);
    expect((await w.metrics.alerts.get()).values.find((v) => v.labels.reason === 'message_invalid')?.value).toBe(2);
  });

  it('a pushed link LINE took but whose answer was lost, cancelled and re-booked, is not sent twice (the push keeps its key)', async () => {
    w = await openEngineWorld(dialect, { line: { retry: { baseDelay: '30s', maxDelay: '1m' } } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'after-accept-drop' } });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:01Z');
    const book = (cancelled: boolean) => upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-1', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(1) }, cancelled }], { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) });
    await book(true);
    await book(false);
    await w.advance(120_000);
    expect(w.h.emulator.received(userId(1))).toHaveLength(1);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).executeTakeFirstOrThrow()).toMatchObject({ state: 'sent', last_error: expect.stringMatching(/409/) });
  });

  it('expires a delivery left mid-send past its window with a reason that says it may have gone out', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.h.database.db.updateTable('deliveries').set({ state: 'sending', attempts: 1, lease_owner: 'dead', lease_token: 'dead-token', lease_expires_at: new Date('2026-12-01T11:51:00Z') }).execute();
    await w.at('2026-12-01T12:51:00Z'); // the service was down all along
    await w.engine().start();
    expect(w.received()).toEqual([]);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).executeTakeFirstOrThrow()).toMatchObject({ state: 'expired', last_error: expect.stringMatching(/lease ran out.*may have received it/) });
  });

  it.each([
    ['30 minutes', '2026-12-01T12:09:00Z', { sent: 2, expired: 0 }],
    ['5 hours', '2026-12-01T16:39:00Z', { sent: 1, expired: 1 }],
    ['25 hours', '2026-12-02T12:41:00Z', { sent: 0, expired: 2 }],
  ])('after %s down: sends what is still useful, in due order, and expires the rest', async (_name, back, expected) => {
    w = await openEngineWorld(dialect, {}, '2026-12-01T11:00:00Z');
    // Class 11:50–12:40: meeting link due 11:40 (useful until 12:40); feedback due 12:30 (useful until +24 h).
    await w.klass('c1', '2026-12-01T11:50:00Z', 50, [1]);
    await w.at(back); // the service was down from 11:39 until now
    const engine = w.engine();
    await engine.start();
    await w.advance(30 * 60_000);
    const rows = await w.h.database.db.selectFrom('deliveries').select(['kind', 'state', 'last_error']).orderBy('due_at').execute();
    expect(rows.filter((r) => r.state === 'sent')).toHaveLength(expected.sent);
    expect(rows.filter((r) => r.state === 'expired')).toHaveLength(expected.expired);
    for (const r of rows.filter((x) => x.state === 'expired')) expect(r.last_error).toMatch(/missed/);
    const sentKinds = w.received().map((r) => (r.text.includes('zoom') ? 'meeting_url' : 'feedback_url'));
    expect(sentKinds).toEqual(rows.filter((r) => r.state === 'sent').map((r) => r.kind));
  });

  it('sends once when a stalled sender loses its lease and another takes over (fencing + retry key)', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // Worker A's push stalls inside LINE for 30 s (on the shared clock), past its 10 s lease.
    const stall = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 30_000 } });
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const a = w.engine('worker-a');
    const running = a.runOnce();
    await stall.triggered;
    // A stalls as a whole (GC pause, partition): its heartbeat cannot renew, so its lease runs out.
    await w.h.database.db.updateTable('deliveries').set({ lease_expires_at: new Date('2026-12-01T11:49:00Z') }).execute();
    const b = w.engine('worker-b');
    await b.runOnce();
    await w.h.clock.advance(35_000); // A's stalled request finally lands: LINE says 409, and A's completion is fenced out
    await running;
    expect(w.received()).toHaveLength(1);
    const row = await w.h.database.db.selectFrom('deliveries').selectAll().executeTakeFirstOrThrow();
    expect(row.state).toBe('sent');
    expect(row.attempts).toBe(2);
  });
  it.each(STRATEGIES)('%s: a delivery a dead worker left mid-send goes out once its lease runs out', async (strategy) => {
    w = await openEngineWorld(dialect, { notifications: { strategy } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // A worker claimed it at 11:50:00 and died: its lease runs out at 11:51:00.
    await w.h.database.db.updateTable('deliveries').set({ state: 'sending', attempts: 1, lease_owner: 'dead', lease_token: 'dead-token', lease_expires_at: new Date('2026-12-01T11:51:00Z') }).execute();
    await w.at('2026-12-01T11:50:30Z');
    await w.engine().start();
    await w.at('2026-12-01T11:50:59Z');
    expect(w.received()).toEqual([]);
    await w.at('2026-12-01T11:51:30Z'); // within one poll interval of the expiry (the wheel: at it)
    expect(w.received().map((r) => r.to)).toEqual([userId(1)]);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).execute()).toEqual([{ state: 'sent', attempts: 2 }]);
  });

  it.each(STRATEGIES)('%s: a dead worker\'s delivery is taken over within a moment of its lease running out by a database clock behind ours', async (strategy) => {
    w = await openEngineWorld(dialect, { notifications: { strategy } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.h.database.db.updateTable('deliveries').set({ state: 'sending', attempts: 1, lease_owner: 'dead', lease_token: 'dead-token', lease_expires_at: new Date('2026-12-01T11:51:00Z') }).execute();
    w.h.clock.databaseOffsetMs = -100;
    await w.at('2026-12-01T11:50:40Z'); // the wheel's refreshes fall at :10 and :40, not at the expiry
    await w.engine().start();
    await w.at('2026-12-01T11:51:00.100Z');
    expect(w.received()).toEqual([]);
    // Not at the next refresh of the wheel, a poll interval later.
    await w.at('2026-12-01T11:51:00.400Z');
    expect(w.received().map((r) => r.to)).toEqual([userId(1)]);
  });

  it('a heartbeat keeps the lease of a batch stalled past the lease: no other worker takes it', async () => {
    w = await openEngineWorld(dialect, { notifications: { lease: '6s' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const stall = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 9000 } });
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const running = w.engine('worker-a').runOnce();
    await stall.triggered;
    await w.h.clock.advance(7000); // renewed every 2 s: still A's at 7 s (real writes: wait for them to land)
    await vi.waitFor(async () => expect(await leaseEnd()).not.toBe('2026-12-01T11:50:06.000Z'), { timeout: 5000, interval: 10 });
    expect(Date.parse((await leaseEnd()) ?? '')).toBeGreaterThan(Date.parse('2026-12-01T11:50:07Z'));
    expect(await w.engine('worker-b').runOnce()).toMatchObject({ claimed: 0 });
    await w.h.clock.advance(3000);
    await running;
    expect(w.received()).toHaveLength(1);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).execute()).toEqual([{ state: 'sent', attempts: 1 }]);
  });

  it('renewals the database refuses are logged, the lease runs out, and the delivery still goes out once', async () => {
    w = await openEngineWorld(dialect, { notifications: { lease: '6s' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // A real failure in the real database: a trigger that refuses to extend a lease (a renewal keeps
    // the token; a claim changes it).
    if (dialect === 'sqlite') {
      await sql`create trigger refuse_renewal before update of lease_expires_at on deliveries when old.state = 'sending' and new.state = 'sending' and new.lease_token = old.lease_token begin select raise(abort, 'renewal refused'); end`.execute(w.h.database.db);
    } else {
      await sql`create function refuse_renewal() returns trigger language plpgsql as $$ begin raise exception 'renewal refused'; end $$`.execute(w.h.database.db);
      await sql`create trigger refuse_renewal before update of lease_expires_at on deliveries for each row when (old.state = 'sending' and new.state = 'sending' and new.lease_token = old.lease_token) execute function refuse_renewal()`.execute(w.h.database.db);
    }
    const stall = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 9000 } });
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const running = w.engine('worker-a').runOnce();
    await stall.triggered;
    await w.h.clock.advance(7000); // A's renewals fail: its lease runs out at 6 s
    const warnings = () => w.h.logs.filter((l) => l.includes('could not renew the lease'));
    await vi.waitFor(() => expect(warnings().length).toBeGreaterThan(0), { timeout: 5000, interval: 10 });
    expect(warnings()[0]).toContain('renewal refused');
    expect(await leaseEnd()).toBe('2026-12-01T11:50:06.000Z');
    expect(await w.engine('worker-b').runOnce()).toMatchObject({ claimed: 1 });
    await w.h.clock.advance(3000); // A's request lands: LINE answers 409 to the same retry key, and A is fenced out
    await running;
    expect(w.received()).toHaveLength(1);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).execute()).toEqual([{ state: 'sent', attempts: 2 }]);
  });

  it('sends a big class by multicast: each chunk stored with its member set first, each student once', async () => {
    w = await openEngineWorld(dialect);
    const students = Array.from({ length: 1200 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    await w.advance(5000);
    const received = w.received();
    const recipients = received.flatMap((r) => r.to.split(','));
    expect(recipients.sort()).toEqual(students.map(userId).sort());
    const chunks = await w.h.database.db.selectFrom('line_multicasts').select(['id', 'state', 'attempts']).execute();
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.every((c) => c.state === 'sent' && c.attempts === 1)).toBe(true);
    const members = await w.h.database.db.selectFrom('line_multicast_members').select(['multicast_id', 'delivery_id']).execute();
    expect(members.every((m) => m.delivery_id !== null)).toBe(true);
    expect(new Set(members.map((m) => m.multicast_id))).toEqual(new Set(chunks.map((c) => c.id)));
    expect(members.length).toBe(w.h.emulator.received().filter((r) => r.endpoint === 'multicast').length);
    expect((await w.h.database.db.selectFrom('deliveries').select('state').where('state', '<>', 'sent').execute())).toEqual([]);
  });

  it('holds the link of a moved class until its meeting is moved too, then sends the new one', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    await upsertSchedules(
      w.h.database.db,
      w.h.clock,
      [{ externalId: 'c1', title: 'Class c1', startsAt: new Date('2026-12-01T13:00:00Z'), endsAt: new Date('2026-12-01T13:50:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false }],
      { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) },
    );
    await w.at('2026-12-01T12:51:00Z');
    expect(w.received()).toEqual([]);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).executeTakeFirstOrThrow()).toMatchObject({ state: 'pending', last_error: expect.stringMatching(/not at its new time yet/) });
    await w.meetingMoved('c1');
    await w.at('2026-12-01T12:52:00Z');
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T12:52:00.000Z']); // the next look, a minute on
  });

  it('a class moved while its link is in flight gets the corrected link at the new time, under a new retry key', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const stall = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 5000 } });
    const engine = w.engine();
    await engine.start();
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const running = engine.runOnce();
    await stall.triggered;
    await upsertSchedules(
      w.h.database.db,
      w.h.clock,
      [{ externalId: 'c1', title: 'Class c1', startsAt: new Date('2026-12-01T13:00:00Z'), endsAt: new Date('2026-12-01T13:50:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false }],
      { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) },
    );
    await w.h.clock.advance(6000); // the old request could not be stopped: LINE took it
    await running;
    await w.meetingMoved('c1');
    await w.at('2026-12-01T12:55:00Z');
    const received = w.received();
    expect(received.map((r) => r.at)).toEqual(['2026-12-01T11:50:05.000Z', '2026-12-01T12:50:00.000Z']);
    expect(received[1]?.text).toContain('21:00'); // 13:00 UTC in Asia/Taipei
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).execute()).toEqual([{ state: 'sent', attempts: 1 }]);
  });

  it('a booking moved to another class after its link went out gets the new class\'s link', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-1', scheduleExternalId: 'c2', student: { channel: 'school-a', lineUserId: userId(1) }, cancelled: false }], { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) });
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts', 'last_error']).executeTakeFirstOrThrow()).toMatchObject({ state: 'pending', attempts: 0, last_error: expect.stringMatching(/owed again.*sent at 2026-12-01T11:50:00.000Z/) });
    await w.at('2026-12-01T13:55:00Z');
    expect(w.received().map((r) => [r.at, r.text.includes('/j/c1'), r.text.includes('/j/c2')])).toEqual([
      ['2026-12-01T11:50:00.000Z', true, false],
      ['2026-12-01T13:50:00.000Z', false, true],
    ]);
  });

  it('retries a failed multicast chunk as one request, to the students still owed it', async () => {
    w = await openEngineWorld(dialect);
    const students = Array.from({ length: 30 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/multicast', fault: { status: 500 } });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    expect(w.received()).toEqual([]);
    // Student 5 cancels before the retry.
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'big-5', scheduleExternalId: 'big', student: { channel: 'school-a', lineUserId: userId(5) }, cancelled: true }], { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) });
    await w.advance(60_000);
    const requests = w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`);
    expect(requests.slice(0, 2)).toEqual(['multicast 500', 'multicast 200']);
    // One resend per chunk and page (not one per delivery: it was 28): on PostgreSQL the retries may
    // fall in the two pages in flight, and the second page's resend is answered 409.
    expect(requests.slice(2).every((r) => r === 'multicast 409') && requests.length <= 3).toBe(true);
    expect(w.received().flatMap((r) => r.to.split(',')).sort()).toEqual(students.filter((n) => n !== 5).map(userId).sort());
    const states = await w.h.database.db.selectFrom('deliveries').select('state').execute();
    expect(states.filter((r) => r.state === 'sent')).toHaveLength(29);
    expect(states.filter((r) => r.state === 'cancelled')).toHaveLength(1);
    // Student 5 books again: the chunk went out without them, so they get their own message.
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'big-5', scheduleExternalId: 'big', student: { channel: 'school-a', lineUserId: userId(5) }, cancelled: false }], { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) });
    await w.advance(5000);
    expect(w.h.emulator.received(userId(5))).toHaveLength(1);
    expect((await w.h.database.db.selectFrom('deliveries').select('state').where('state', '<>', 'sent').execute()).length).toBe(0);
  });

  it('claims one page at a time, so two pages in flight never split a class between a multicast and pushes', async () => {
    w = await openEngineWorld(dialect, { notifications: { strategy: 'batched', batchSize: 100 } });
    const students = Array.from({ length: 30 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    const claims = watchClaims(w.h.database.db);
    await w.engine(undefined, claims.db).start();
    await w.at('2026-12-01T11:50:00Z');
    // Two claims racing through SKIP LOCKED on PostgreSQL could each take part of the class.
    expect(claims.mostAtOnce()).toBe(1);
    expect(w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`)).toEqual(['multicast 200']);
    expect(w.received().flatMap((r) => r.to.split(',')).sort()).toEqual(students.map(userId).sort());
  });

  it('a multicast whose outcome could not be written is resent as its chunk after a restart, never in a new one', async () => {
    w = await openEngineWorld(dialect);
    const students = Array.from({ length: 30 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    // The database refuses to record the deliveries as sent (a real failure, in the real database).
    if (dialect === 'sqlite') {
      await sql`create trigger refuse_sent before update of state on deliveries when new.state = 'sent' begin select raise(abort, 'refused'); end`.execute(w.h.database.db);
    } else {
      await sql`create function refuse_sent() returns trigger language plpgsql as $$ begin raise exception 'refused'; end $$`.execute(w.h.database.db);
      await sql`create trigger refuse_sent before update of state on deliveries for each row when (new.state = 'sent') execute function refuse_sent()`.execute(w.h.database.db);
    }
    const first = w.engine('worker-a');
    await first.start();
    await w.at('2026-12-01T11:50:00Z');
    expect(w.h.logs.some((l) => l.includes('delivery round failed'))).toBe(true);
    await first.stop(); // hands its claims back
    await sql`drop trigger refuse_sent${sql.raw(dialect === 'sqlite' ? '' : ' on deliveries')}`.execute(w.h.database.db);
    await w.engine('worker-b').start();
    await w.advance(60_000);
    // LINE took the chunk the first time: the restart resends nothing and records everyone sent.
    expect(w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`)).toEqual(['multicast 200']);
    expect(w.received().flatMap((r) => r.to.split(',')).sort()).toEqual(students.map(userId).sort());
    expect((await w.h.database.db.selectFrom('deliveries').select('state').where('state', '<>', 'sent').execute()).length).toBe(0);
  });

  it('does not retry a push past LINE\'s 24-hour memory of its retry key: it fails with the reason instead', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1]);
    // The feedback link (due 12:40, useful for 24 h after the end) was tried and failed ambiguously
    // twice; it is still retrying 23.5 hours after it was due.
    await w.h.database.db.updateTable('deliveries').set({ state: 'expired' }).where('kind', '=', 'meeting_url').execute();
    await w.h.database.db.updateTable('deliveries').set({ attempts: 2, last_error: 'LINE timed out' }).where('kind', '=', 'feedback_url').execute();
    await w.at('2026-12-02T12:10:00Z');
    await w.h.database.db.updateTable('deliveries').set({ available_at: new Date('2026-12-02T12:10:00Z') }).where('kind', '=', 'feedback_url').execute();
    await w.engine().start();
    expect(w.received()).toEqual([]);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).where('kind', '=', 'feedback_url').executeTakeFirstOrThrow()).toMatchObject({ state: 'failed', last_error: expect.stringMatching(/over 23 h ago.*could deliver twice/) });
  });
});

