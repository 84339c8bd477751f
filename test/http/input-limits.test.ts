import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, userId, type Harness } from '../support/harness.ts';

const body = { title: 't', startsAt: '2026-12-01T10:00:00Z', endsAt: '2026-12-01T11:00:00Z' };

/** What the schemas accept reaches the database intact; what they refuse is a 400 naming the field. */
describe.each(dialects)('the edges of what the admin API accepts on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
    const channel = await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' } });
    expect(channel.statusCode).toBe(201);
  });
  afterEach(async () => {
    await h.close();
  });

  it('an external id of the longest length allowed (200) can be written, read and booked by its URL', async () => {
    const id = 'x'.repeat(200);
    const put = await h.app.inject({ method: 'PUT', url: `/api/schedules/${id}`, payload: body });
    expect(put.statusCode).toBe(201);
    const get = await h.app.inject({ method: 'GET', url: `/api/schedules/${id}` });
    expect(get.statusCode).toBe(200);
    expect(get.json().externalId).toBe(id);
    const booked = await h.app.inject({ method: 'PUT', url: `/api/appointments/${id}`, payload: { scheduleExternalId: id, student: { channel: 'main', lineUserId: userId(1) } } });
    expect(booked.statusCode).toBe(201);
    // And 200 characters that take several bytes each in the URL.
    const wide = '課'.repeat(200);
    expect((await h.app.inject({ method: 'PUT', url: `/api/schedules/${encodeURIComponent(wide)}`, payload: body })).statusCode).toBe(201);
    expect((await h.app.inject({ method: 'GET', url: `/api/schedules/${encodeURIComponent(wide)}` })).json().externalId).toBe(wide);
  });

  it('an external id over 200 characters is a 400 naming it, in the API format', async () => {
    const response = await h.app.inject({ method: 'PUT', url: `/api/schedules/${'x'.repeat(201)}`, payload: body });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: 'invalid', field: 'params.externalId' });
    expect((await h.app.inject({ method: 'GET', url: `/api/schedules/${'x'.repeat(201)}` })).json()).toMatchObject({ error: 'invalid', field: 'params.externalId' });
  });

  it.each([
    ['a NUL in a title', { ...body, title: 'bad\u0000title' }, 'title'],
    ['an escape character in a title', { ...body, title: 'bad\u001b[31mtitle' }, 'title'],
    ['a NUL in a feedback link', { ...body, feedbackUrl: 'https://forms.example.com/f\u0000' }, 'feedbackUrl'],
  ])('%s is a 400 naming the field, and nothing is written', async (_name, payload, field) => {
    const response = await h.app.inject({ method: 'PUT', url: '/api/schedules/c-1', payload });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ error: 'invalid', field, message: expect.stringMatching(/control characters/) });
    expect((await rowCounts(h.database)).schedules).toBe(0);
  });

  it('a NUL in one item of a bulk, or in an id, rejects the whole batch with a 400 naming the item', async () => {
    const items = Array.from({ length: 50 }, (_, i) => ({ ...body, externalId: `c-${i}`, title: i === 37 ? 'bad\u0000title' : 't' }));
    const bulk = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items } });
    expect(bulk.statusCode).toBe(400);
    expect(bulk.json()).toMatchObject({ error: 'invalid', field: 'items.37.title' });
    const nulId = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items: [{ ...body, externalId: 'a\u0000b' }] } });
    expect(nulId.statusCode).toBe(400);
    expect(nulId.json()).toMatchObject({ error: 'invalid', field: 'items.0.externalId' });
    const booking = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items: [{ externalId: 'a\u0000', scheduleExternalId: 'c-1', student: { channel: 'main', lineUserId: userId(1) } }] } });
    expect(booking.statusCode).toBe(400);
    expect(booking.json()).toMatchObject({ error: 'invalid', field: 'items.0.externalId' });
    expect(await rowCounts(h.database)).toMatchObject({ schedules: 0, appointments: 0, members: 0 });
  });

  it.each([
    ['an id that is not an integer', ['2026-12-01T00:00:00.000Z', 1.5]],
    ['an id beyond the safe integers', ['2026-12-01T00:00:00.000Z', 1e20]],
    ['a negative id', ['2026-12-01T00:00:00.000Z', -5]],
    ['an id of 0', ['2026-12-01T00:00:00.000Z', 0]],
    ['a year beyond 9999', ['+275760-09-13T00:00:00.000Z', 1]],
    ['a year before 0', ['-100000-01-01T00:00:00.000Z', 1]],
  ])('a garbled cursor with %s is a 400 naming it', async (_name, value) => {
    const cursor = Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const path of ['/api/schedules', '/api/deliveries']) {
      const response = await h.app.inject({ method: 'GET', url: `${path}?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&cursor=${cursor}` });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: 'invalid', field: 'query.cursor' });
    }
  });
});
