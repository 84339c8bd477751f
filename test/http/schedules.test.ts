import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, userId, type Harness } from '../support/harness.ts';

const schedule = {
  title: '英文會話 A1',
  startsAt: '2026-12-01T20:00:00+08:00',
  endsAt: '2026-12-01T20:40:00+08:00',
  trial: true,
  minParticipants: 2,
  feedbackUrl: 'https://forms.example.com/feedback?c=1',
};

describe.each(dialects)('schedules and appointments over the admin API on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
    const channel = await h.app.inject({
      method: 'POST',
      url: '/api/line-channels',
      payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' },
    });
    expect(channel.statusCode).toBe(201);
  });
  afterEach(async () => {
    await h.close();
  });

  const put = (externalId: string, payload: unknown) => h.app.inject({ method: 'PUT', url: `/api/schedules/${externalId}`, payload: payload as object });

  it('creates, leaves unchanged, updates, and bumps the version only when the time or cancellation changes', async () => {
    const created = await put('c-1', schedule);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ outcome: 'created', version: 1, startsAt: '2026-12-01T12:00:00.000Z', endsAt: '2026-12-01T12:40:00.000Z', trial: true });

    const same = await put('c-1', schedule);
    expect(same.statusCode).toBe(200);
    expect(same.json()).toMatchObject({ outcome: 'unchanged', version: 1 });

    const renamed = await put('c-1', { ...schedule, title: 'renamed' });
    expect(renamed.json()).toMatchObject({ outcome: 'updated', version: 1, title: 'renamed' });

    const moved = await put('c-1', { ...schedule, title: 'renamed', startsAt: '2026-12-01T21:00:00+08:00', endsAt: '2026-12-01T21:40:00+08:00' });
    expect(moved.json()).toMatchObject({ outcome: 'updated', version: 2, startsAt: '2026-12-01T13:00:00.000Z' });

    const cancelled = await put('c-1', { ...schedule, title: 'renamed', startsAt: '2026-12-01T21:00:00+08:00', endsAt: '2026-12-01T21:40:00+08:00', cancelled: true });
    expect(cancelled.json()).toMatchObject({ outcome: 'updated', version: 3, cancelled: true });
    expect((await rowCounts(h.database)).schedules).toBe(1);
  });

  it.each([
    ['a missing title', { ...schedule, title: undefined }, 'title', 400],
    ['a wrong type', { ...schedule, minParticipants: 'two' }, 'minParticipants', 400],
    ['a time without offset', { ...schedule, startsAt: '2026-12-01T20:00:00' }, 'startsAt', 400],
    ['the end before the start', { ...schedule, endsAt: '2026-12-01T19:00:00+08:00' }, 'endsAt', 400],
    ['the end equal to the start', { ...schedule, endsAt: schedule.startsAt }, 'endsAt', 400],
    ['a class over 24 hours', { ...schedule, endsAt: '2026-12-03T20:00:00+08:00' }, 'endsAt', 400],
    ['an http feedback link', { ...schedule, feedbackUrl: 'http://forms.example.com/f' }, 'feedbackUrl', 400],
    ['an unknown field', { ...schedule, room: 'A' }, 'room', 400],
  ])('rejects a schedule with %s and writes nothing', async (_name, payload, field, status) => {
    const response = await put('c-1', payload);
    expect(response.statusCode).toBe(status);
    expect(response.json().field).toBe(field);
    expect((await rowCounts(h.database)).schedules).toBe(0);
  });

  it('ignores a write older than the revision stored, so a delayed or retried request cannot undo a newer one', async () => {
    const at = (hour: number) => ({ ...schedule, startsAt: `2026-12-01T${hour}:00:00+08:00`, endsAt: `2026-12-01T${hour}:40:00+08:00` });
    expect((await put('c-1', { ...at(20), revision: 1 })).statusCode).toBe(201);
    expect((await put('c-1', { ...at(21), revision: 3 })).json()).toMatchObject({ outcome: 'updated', version: 2, revision: 3 });
    // Revision 2 (20:30) was sent before 3 but arrives after it.
    const late = await put('c-1', { ...at(20), title: 'late', revision: 2 });
    expect(late.statusCode).toBe(200);
    expect(late.json()).toMatchObject({ outcome: 'stale', version: 2, revision: 3, title: schedule.title, startsAt: '2026-12-01T13:00:00.000Z' });
    // Unchanged but newer: the revision is recorded, so 4 is older than 5 from now on.
    expect((await put('c-1', { ...at(21), revision: 5 })).json()).toMatchObject({ outcome: 'unchanged', revision: 5 });
    expect((await put('c-1', { ...at(22), revision: 4 })).json()).toMatchObject({ outcome: 'stale', startsAt: '2026-12-01T13:00:00.000Z' });
    // A platform that sends no revision gets last-write-wins; the stored revision stays.
    expect((await put('c-1', at(22))).json()).toMatchObject({ outcome: 'updated', revision: 5, startsAt: '2026-12-01T14:00:00.000Z' });
    // A late retry of revision 5 would undo that write: stale. Sent again as stored, it changes nothing.
    expect((await put('c-1', { ...at(21), revision: 5 })).json()).toMatchObject({ outcome: 'stale', startsAt: '2026-12-01T14:00:00.000Z' });
    expect((await put('c-1', { ...at(22), revision: 5 })).json()).toMatchObject({ outcome: 'unchanged', revision: 5 });
    // Unchanged and older: nothing changes, and the newer revision stays recorded.
    expect((await put('c-1', { ...at(22), revision: 4 })).json()).toMatchObject({ outcome: 'unchanged', revision: 5 });
    expect((await put('c-1', { ...at(20), revision: -1 })).statusCode).toBe(400);
    // Bookings: a cancellation at revision 2 is not undone by revision 1 arriving late.
    const booking = (cancelled: boolean, revision: number) => h.app.inject({ method: 'PUT', url: '/api/appointments/a-1', payload: { scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) }, cancelled, revision } });
    expect((await booking(true, 2)).json()).toMatchObject({ outcome: 'created' });
    expect((await booking(false, 1)).json()).toMatchObject({ outcome: 'stale' });
    const bulk = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items: [{ externalId: 'a-1', scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) }, cancelled: false, revision: 1 }] } });
    expect(bulk.json()).toMatchObject({ results: [{ externalId: 'a-1', outcome: 'stale' }] });
    expect(await h.database.db.selectFrom('appointments').select(['cancelled', 'source_revision']).executeTakeFirstOrThrow()).toMatchObject({ source_revision: 2 });
    expect(Boolean((await h.database.db.selectFrom('appointments').select('cancelled').executeTakeFirstOrThrow()).cancelled)).toBe(true);
    // Revived without a revision, then a late retry of the cancellation at 2: stale, the booking stays live.
    const revived = await h.app.inject({ method: 'PUT', url: '/api/appointments/a-1', payload: { scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) }, cancelled: false } });
    expect(revived.json()).toMatchObject({ outcome: 'updated' });
    expect((await booking(true, 2)).json()).toMatchObject({ outcome: 'stale' });
    expect((await booking(false, 1)).json()).toMatchObject({ outcome: 'unchanged' });
    expect(await h.database.db.selectFrom('appointments').select(['cancelled', 'source_revision']).executeTakeFirstOrThrow()).toMatchObject({ source_revision: 2 });
  });

  it('keeps the stored schedule when an update is invalid', async () => {
    await put('c-1', schedule);
    const bad = await put('c-1', { ...schedule, endsAt: '2026-12-01T19:00:00+08:00' });
    expect(bad.statusCode).toBe(400);
    const got = await h.app.inject({ method: 'GET', url: '/api/schedules/c-1' });
    expect(got.json().endsAt).toBe('2026-12-01T12:40:00.000Z');
  });

  it('books students, creating members with unknown following status, and shows them on the schedule', async () => {
    await put('c-1', schedule);
    const booked = await h.app.inject({
      method: 'PUT',
      url: '/api/appointments/a-1',
      payload: { scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) } },
    });
    expect(booked.statusCode).toBe(201);
    const again = await h.app.inject({
      method: 'PUT',
      url: '/api/appointments/a-1',
      payload: { scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) } },
    });
    expect(again.json().outcome).toBe('unchanged');
    const cancelled = await h.app.inject({
      method: 'PUT',
      url: '/api/appointments/a-1',
      payload: { scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) }, cancelled: true },
    });
    expect(cancelled.json().outcome).toBe('updated');

    const detail = await h.app.inject({ method: 'GET', url: '/api/schedules/c-1' });
    expect(detail.statusCode).toBe(200);
    const [appointment] = detail.json().appointments;
    expect(appointment).toMatchObject({ externalId: 'a-1', cancelled: true, student: { channel: 'main', lineUserId: userId(1), displayName: null, following: 'unknown' } });
    // The outbox made both deliveries with the booking, and cancelled them with it.
    expect(appointment.deliveries).toEqual([
      { kind: 'meeting_url', state: 'cancelled', dueAt: '2026-12-01T11:50:00.000Z', attempts: 0, sentAt: null, latenessMs: null, lastError: 'booking cancelled' },
      { kind: 'feedback_url', state: 'cancelled', dueAt: '2026-12-01T12:30:00.000Z', attempts: 0, sentAt: null, latenessMs: null, lastError: 'booking cancelled' },
    ]);
    const members = await h.database.db.selectFrom('members').selectAll().execute();
    expect(members).toHaveLength(1);
    expect(members[0]?.following).toBe('unknown');
  });

  it.each([
    ['an unknown schedule', { scheduleExternalId: 'nope', student: { channel: 'main', lineUserId: userId(1) } }, 404, 'scheduleExternalId'],
    ['an unknown channel', { scheduleExternalId: 'c-1', student: { channel: 'other', lineUserId: userId(1) } }, 404, 'student.channel'],
    ['a malformed LINE user id', { scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: 'bob' } }, 400, 'student.lineUserId'],
    ['no student', { scheduleExternalId: 'c-1' }, 400, 'student'],
  ])('rejects an appointment for %s and writes nothing', async (_name, payload, status, field) => {
    await put('c-1', schedule);
    const before = await rowCounts(h.database);
    const response = await h.app.inject({ method: 'PUT', url: '/api/appointments/a-1', payload });
    expect(response.statusCode).toBe(status);
    expect(response.json().field).toBe(field);
    expect(await rowCounts(h.database)).toEqual(before);
  });

  it('imports thousands in bulk, all or nothing', async () => {
    const start = Date.parse('2026-12-02T00:00:00Z');
    const items = Array.from({ length: 1500 }, (_, i) => ({
      externalId: `b-${i}`,
      title: `class ${i}`,
      startsAt: new Date(start + i * 3_600_000).toISOString(),
      endsAt: new Date(start + i * 3_600_000 + 2_400_000).toISOString(),
    }));
    const bulk = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items } });
    expect(bulk.statusCode).toBe(200);
    expect(bulk.json().results).toHaveLength(1500);
    expect(bulk.json().results.every((r: { outcome: string }) => r.outcome === 'created')).toBe(true);

    const bookings = items.map((item, i) => ({
      externalId: `ap-${i}`,
      scheduleExternalId: item.externalId,
      student: { channel: 'main', lineUserId: userId(i % 300) },
    }));
    const booked = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items: bookings } });
    expect(booked.statusCode).toBe(200);
    expect(await rowCounts(h.database)).toMatchObject({ schedules: 1500, appointments: 1500, members: 300 });

    // One bad item (index 700) rejects the whole batch; the good changes before it are not kept.
    const mixed = items.map((item, i) => (i === 700 ? { ...item, endsAt: item.startsAt } : { ...item, title: 'changed' }));
    const rejected = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items: mixed } });
    expect(rejected.statusCode).toBe(400);
    expect(rejected.json().field).toBe('items[700].endsAt');
    const unknownSchedule = [...bookings.slice(0, 10), { ...bookings[10], externalId: 'ap-new', scheduleExternalId: 'missing' }];
    const rejectedBookings = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items: unknownSchedule } });
    expect(rejectedBookings.statusCode).toBe(404);
    expect(rejectedBookings.json().field).toBe('items[10].scheduleExternalId');
    const titles = await h.database.db.selectFrom('schedules').select('title').where('title', '=', 'changed').execute();
    expect(titles).toHaveLength(0);
    expect((await rowCounts(h.database)).appointments).toBe(1500);

    const duplicate = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items: [items[0], items[0]] } });
    expect(duplicate.statusCode).toBe(400);
    expect(duplicate.json().field).toBe('items[1].externalId');
  });

  it('lists schedules in a window, page by page, with booking and delivery counts', async () => {
    for (let i = 0; i < 5; i++) {
      await put(`c-${i}`, { ...schedule, startsAt: `2026-12-0${i + 1}T20:00:00+08:00`, endsAt: `2026-12-0${i + 1}T21:00:00+08:00` });
    }
    await h.app.inject({ method: 'PUT', url: '/api/appointments/a-1', payload: { scheduleExternalId: 'c-0', student: { channel: 'main', lineUserId: userId(1) } } });
    const first = await h.app.inject({ method: 'GET', url: '/api/schedules?from=2026-12-01T00:00:00Z&to=2026-12-10T00:00:00Z&limit=2' });
    expect(first.statusCode).toBe(200);
    expect(first.json().items.map((s: { externalId: string }) => s.externalId)).toEqual(['c-0', 'c-1']);
    expect(first.json().items[0].appointments).toEqual({ booked: 1, cancelled: 0 });
    const second = await h.app.inject({ method: 'GET', url: `/api/schedules?from=2026-12-01T00:00:00Z&to=2026-12-10T00:00:00Z&limit=2&cursor=${first.json().nextCursor}` });
    expect(second.json().items.map((s: { externalId: string }) => s.externalId)).toEqual(['c-2', 'c-3']);
    const window = await h.app.inject({ method: 'GET', url: '/api/schedules?from=2026-12-02T00:00:00Z&to=2026-12-03T00:00:00Z' });
    expect(window.json().items.map((s: { externalId: string }) => s.externalId)).toEqual(['c-1']);
    expect((await h.app.inject({ method: 'GET', url: '/api/schedules?cursor=garbage' })).statusCode).toBe(400);
    expect((await h.app.inject({ method: 'GET', url: '/api/schedules?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z' })).statusCode).toBe(400);
    expect((await h.app.inject({ method: 'GET', url: '/api/schedules/unknown' })).statusCode).toBe(404);
  });

  it('serves an OpenAPI document describing the admin API', async () => {
    const doc = await h.app.inject({ method: 'GET', url: '/docs/json' });
    expect(doc.statusCode).toBe(200);
    const paths = Object.keys(doc.json().paths);
    expect(paths).toEqual(expect.arrayContaining(['/api/zoom-accounts', '/api/line-channels', '/api/schedules/{externalId}', '/api/appointments/{externalId}', '/api/schedules/bulk', '/api/config']));
    expect(doc.json().paths['/api/schedules/{externalId}'].put.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['title', 'startsAt', 'endsAt']),
    );
  });
});
