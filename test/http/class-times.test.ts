import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, userId, type Harness } from '../support/harness.ts';

/** A 50-minute class starting at `startsAt`. */
const klass = (startsAt: string) => ({ title: 't', startsAt, endsAt: new Date(Date.parse(startsAt) + 50 * 60_000).toISOString() });

/**
 * Class times the API accepts: from 2000-01-01 (history a platform syncs) up to two years (731
 * days) ahead of the clock's now. The harness's clock stands at 2026-12-01T00:00:00Z.
 */
describe.each(dialects)('the range of class times over the admin API on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
    expect((await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' } })).statusCode).toBe(201);
  });
  afterEach(async () => {
    await h.close();
  });

  const put = (id: string, startsAt: string) => h.app.inject({ method: 'PUT', url: `/api/schedules/${id}`, payload: klass(startsAt) });

  it.each([
    ['year 0003', '0003-12-01T10:00:00Z'],
    ["1970's epoch zero", '1970-01-01T00:00:00Z'],
    ['just before 2000', '1999-12-31T23:59:59Z'],
    ['a second past two years ahead', '2028-12-01T00:00:01Z'],
    ['year 9999', '9999-12-01T10:00:00Z'],
  ])('a class starting in %s is a 400 naming startsAt, and nothing is written', async (_name, startsAt) => {
    const before = await rowCounts(h.database);
    const response = await put('c1', startsAt);
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: 'invalid', field: 'startsAt', message: expect.stringMatching(/^startsAt: must be from 2000-01-01T00:00:00.000Z up to two years ahead \(2028-12-01T00:00:00.000Z\)$/) });
    expect(await rowCounts(h.database)).toEqual(before);
  });

  it('accepts the edges, and a class already over (history a platform syncs) with its bookings: no meeting is made for it', async () => {
    expect((await put('first', '2000-01-01T00:00:00Z')).statusCode).toBe(201);
    expect((await put('last', '2028-12-01T00:00:00Z')).statusCode).toBe(201);
    expect((await put('past', '2025-06-01T10:00:00Z')).statusCode).toBe(201);
    const booked = await h.app.inject({ method: 'PUT', url: '/api/appointments/p1', payload: { scheduleExternalId: 'past', student: { channel: 'main', lineUserId: userId(1) } } });
    expect(booked.statusCode).toBe(201);
    const detail = (await h.app.inject({ method: 'GET', url: '/api/schedules/past' })).json();
    expect(detail).toMatchObject({ startsAt: '2025-06-01T10:00:00.000Z', meeting: { state: 'none' } });
  });

  it('in a bulk, one class out of range rejects the batch, naming the item', async () => {
    const before = await rowCounts(h.database);
    const response = await h.app.inject({
      method: 'POST',
      url: '/api/schedules/bulk',
      payload: { items: [{ externalId: 'ok', ...klass('2026-12-02T10:00:00Z') }, { externalId: 'far', ...klass('9999-12-01T10:00:00Z') }] },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: 'invalid', field: 'items[1].startsAt' });
    expect(await rowCounts(h.database)).toEqual(before);
  });

  it('the upper bound follows the clock: a class refused today is accepted once it is within two years', async () => {
    expect((await put('c1', '2029-06-01T10:00:00Z')).statusCode).toBe(400);
    await h.clock.set(new Date('2027-07-01T00:00:00Z'));
    expect((await put('c1', '2029-06-01T10:00:00Z')).statusCode).toBe(201);
  });
});
