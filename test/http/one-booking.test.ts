import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, userId, type Harness } from '../support/harness.ts';

const klass = (day: number) => ({ title: 't', startsAt: `2026-12-0${day}T10:00:00Z`, endsAt: `2026-12-0${day}T11:00:00Z` });

/** Two live bookings of one student in one class would send them every message twice. */
describe.each(dialects)('one live booking per student and class, over the admin API on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
    expect((await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' } })).statusCode).toBe(201);
    for (const [id, day] of [['c1', 2], ['c2', 3]] as const) expect((await h.app.inject({ method: 'PUT', url: `/api/schedules/${id}`, payload: klass(day) })).statusCode).toBe(201);
  });
  afterEach(async () => {
    await h.close();
  });

  const student = (n: number) => ({ channel: 'main', lineUserId: userId(n) });
  const book = (id: string, payload: object) => h.app.inject({ method: 'PUT', url: `/api/appointments/${id}`, payload });
  const bulk = (items: object[]) => h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items } });

  it('a second booking of the student into the class is a 409 naming the booking already there, and writes nothing', async () => {
    expect((await book('a1', { scheduleExternalId: 'c1', student: student(1) })).statusCode).toBe(201);
    const before = await rowCounts(h.database);
    const second = await book('a2', { scheduleExternalId: 'c1', student: student(1) });
    expect(second.statusCode).toBe(409);
    expect(second.json()).toMatchObject({ error: 'conflict', field: 'student.lineUserId', message: expect.stringContaining('"a1"') });
    // Nor by moving another booking of theirs into it, nor by bringing a cancelled one back.
    expect((await book('a3', { scheduleExternalId: 'c2', student: student(1) })).statusCode).toBe(201);
    expect((await book('a3', { scheduleExternalId: 'c1', student: student(1) })).statusCode).toBe(409);
    expect((await book('a4', { scheduleExternalId: 'c1', student: student(1), cancelled: true })).statusCode).toBe(201);
    expect((await book('a4', { scheduleExternalId: 'c1', student: student(1) })).statusCode).toBe(409);
    // Only a3 (its link for c2) and a4 (cancelled: owed nothing) were written.
    expect(await rowCounts(h.database)).toEqual({ ...before, appointments: (before.appointments ?? 0) + 2, deliveries: (before.deliveries ?? 0) + 1 });
  });

  it('in a bulk, a clash with a stored booking or within the batch rejects the whole batch, naming the item and the booking; a booking leaving the class makes room', async () => {
    expect((await book('a1', { scheduleExternalId: 'c1', student: student(1) })).statusCode).toBe(201);
    const before = await rowCounts(h.database);
    const stored = await bulk([
      { externalId: 'b1', scheduleExternalId: 'c2', student: student(2) },
      { externalId: 'b2', scheduleExternalId: 'c1', student: student(1) },
    ]);
    expect(stored.statusCode).toBe(409);
    expect(stored.json()).toMatchObject({ error: 'conflict', field: 'items[1].student.lineUserId', message: expect.stringContaining('"a1"') });
    const within = await bulk([
      { externalId: 'b1', scheduleExternalId: 'c2', student: student(2) },
      { externalId: 'b2', scheduleExternalId: 'c2', student: student(3) },
      { externalId: 'b3', scheduleExternalId: 'c2', student: student(2) },
    ]);
    expect(within.statusCode).toBe(409);
    expect(within.json()).toMatchObject({ error: 'conflict', field: 'items[2].student.lineUserId', message: expect.stringContaining('"b1" (items[0])') });
    expect(await rowCounts(h.database)).toEqual(before);
    // A booking that leaves the class in the same batch makes room; re-sending one unchanged is no clash.
    const swap = await bulk([
      { externalId: 'b1', scheduleExternalId: 'c1', student: student(1) },
      { externalId: 'a1', scheduleExternalId: 'c2', student: student(1) },
    ]);
    expect(swap.statusCode).toBe(200);
    expect(swap.json().results.map((r: { outcome: string }) => r.outcome)).toEqual(['created', 'updated']);
    expect((await book('b1', { scheduleExternalId: 'c1', student: student(1) })).json()).toMatchObject({ outcome: 'unchanged' });
  });
});
