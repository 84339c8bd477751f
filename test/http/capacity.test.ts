import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openHarness, type Harness } from '../support/harness.ts';
import { cli, urlOf } from '../support/cli.ts';
import { clearHostRefused, markHostsRefused } from '../../src/zoom/hosts.ts';

describe.each(dialects)('capacity over the API and the CLI on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
  });
  afterEach(async () => {
    await h.close();
  });

  it('reports concurrent classes against the enabled hosts', async () => {
    await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: { label: 'h', plan: 'licensed', accountId: 'a', clientId: 'c', clientSecret: 's', hostUserId: 'u' } });
    for (const id of ['x', 'y']) {
      await h.app.inject({ method: 'PUT', url: `/api/schedules/${id}`, payload: { title: id, startsAt: '2026-12-02T20:00:00+08:00', endsAt: '2026-12-02T20:50:00+08:00' } });
    }
    const response = await h.app.inject({ method: 'GET', url: '/api/capacity?days=3' });
    expect(response.statusCode).toBe(200);
    const day = response.json().days.find((d: { day: string }) => d.day === '2026-12-02');
    expect(day).toMatchObject({ classes: 2, peakConcurrent: 2 });
    expect(day.shortfalls[0]).toMatchObject({ classes: 2, hosts: 1, missing: 1 });
    expect((await h.app.inject({ method: 'GET', url: '/api/capacity?days=0' })).statusCode).toBe(400);
  });

  it('shows a host Zoom refuses for good, on the host and left out of the capacity, until it works again', async () => {
    const created = await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: { label: 'h', plan: 'licensed', accountId: 'a', clientId: 'c', clientSecret: 's', hostUserId: 'u' } });
    const id: number = created.json().id;
    expect(created.json()).toMatchObject({ refusedReason: null, refusedAt: null });
    await markHostsRefused(h.database.db, [id], 'refused by Zoom: 1001 User does not exist', h.clock.now());
    expect((await h.app.inject({ method: 'GET', url: `/api/zoom-accounts/${id}` })).json()).toMatchObject({ refusedReason: 'refused by Zoom: 1001 User does not exist', refusedAt: h.clock.now().toISOString() });
    const capacity = (await h.app.inject({ method: 'GET', url: '/api/capacity?days=1' })).json();
    expect(capacity.hosts).toEqual({ licensed: 0, basic: 0 });
    expect(capacity.refused).toEqual([{ id, label: 'h', plan: 'licensed', reason: 'refused by Zoom: 1001 User does not exist', since: h.clock.now().toISOString() }]);
    await clearHostRefused(h.database.db, id, h.clock.now());
    expect((await h.app.inject({ method: 'GET', url: '/api/capacity?days=1' })).json()).toMatchObject({ hosts: { licensed: 1 }, refused: [] });
  });

  it('is also a command', async () => {
    // SQLite: a file of its own (the harness's in-memory database is private to its connection).
    const dir = mkdtempSync(join(tmpdir(), 'scheduler-capacity-'));
    const env = { SCHEDULER__DATABASE__URL: urlOf(h.database, join(dir, 'c.db')), SCHEDULER_SECRET_KEY: Buffer.alloc(32, 1).toString('base64') };
    const result = await cli(['capacity', '--days', '2', '--json'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.out).days).toHaveLength(2);
    expect((await cli(['capacity', '--days', 'many'], env)).code).toBe(2);
    rmSync(dir, { recursive: true, force: true });
  });
});
