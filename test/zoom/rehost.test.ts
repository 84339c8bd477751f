import type { RootOperationNode } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { updateZoomAccount } from '../../src/zoom/accounts.ts';
import { createProvisioner } from '../../src/zoom/provisioner.ts';
import { dialects, TEST_DATABASE_URL } from '../support/databases.ts';
import { pauseAfter } from '../support/pause.ts';
import { openZoomWorld, silent, type ZoomWorld } from './world.ts';

/** A statement reading `table` (the pass reads the hosts' write counts once, right after its snapshot of reserved windows). */
const selectsFrom = (table: string) => (node: RootOperationNode): boolean => node.kind === 'SelectQueryNode' && JSON.stringify(node.from).includes(`"name":"${table}"`);

/** A class that cannot stay on its host is re-hosted: another host is reserved before its meeting is deleted. */
describe.each(dialects)('re-hosting a moved class on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const setEnabled = (label: string, enabled: boolean) => updateZoomAccount(world.database.db, world.box, world.clock, world.hostIds.get(label) ?? 0, { enabled });
  const row = () => world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', 's1').executeTakeFirstOrThrow();

  /** s1 at 10:00 and y at 12:00, both on host a; then s1 moves to 12:00, where a is busy. */
  const movedOntoBusyHost = async (): Promise<string | null> => {
    await setEnabled('b', false);
    if (world.hostIds.has('c')) await setEnabled('c', false);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('y', '2026-12-01T12:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 2 });
    await setEnabled('b', true);
    if (world.hostIds.has('c')) await setEnabled('c', true);
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50);
    return (await world.meetingOf('s1')).meetingId;
  };

  it('keeps the new host and deletes the old meeting on a later pass when its DELETE fails', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }], { config: { zoom: { provisioning: { retryDelay: '1m' } } } });
    const old = await movedOntoBusyHost();
    const refused = world.em.faults.add({ method: 'DELETE', path: /\/meetings\/\d+$/, times: Infinity, fault: { status: 503 } });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ moved: 1, created: 1, replaced_retry: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', meetingVersion: 2 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(false);
    expect(await row()).toMatchObject({ replaced_meeting_id: old, replaced_meeting_account_id: world.hostIds.get('a'), replaced_attempts: 1, meeting_attempts: 0 });
    refused.remove();
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ replaced_deleted: 1 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(true);
    expect(await row()).toMatchObject({ replaced_meeting_id: null, replaced_meeting_account_id: null, meeting_state: 'ready' });
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
  });

  it('deletes the old meeting once the new one is made when both calls were cut off (an intent left, as by a crash)', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }]);
    const old = await movedOntoBusyHost();
    // The DELETE and the create never reach Zoom: the row holds b as an intent, and remembers the old meeting.
    world.em.faults.add({ method: 'DELETE', path: /\/meetings\/\d+$/, times: Infinity, fault: { kind: 'drop' } });
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'drop' } });
    await world.provisioner('dead').runPass();
    world.em.faults.clear();
    await world.clock.advance(10 * 60_000);
    await world.provisioner().runPass();
    await world.clock.advance(10 * 60_000);
    await world.provisioner().runPass();
    expect(world.em.meeting(Number(old))?.deleted).toBe(true);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', meetingVersion: 2 });
    expect(world.em.meetings().filter((m) => !m.deleted && m.agenda.includes('[scheduler:s1]'))).toHaveLength(1);
  });

  // Two writers racing for one host: only PostgreSQL runs them at once (SQLite serialises writers).
  it.runIf(dialect === 'postgres' && TEST_DATABASE_URL)('never leaves the class without a meeting when another pass takes the new host first', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }, { label: 'c', plan: 'licensed' }], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    const old = await movedOntoBusyHost();
    // Pass A claims s1 and snapshots the pool (b and c free at 12:00), then stalls.
    const pause = pauseAfter(selectsFrom('zoom_host_usage'), { once: true });
    const paused = createProvisioner({ db: world.database.db.withPlugin(pause.plugin), box: world.box, clock: world.clock, config: world.config, client: world.client, logger: silent, metrics: world.metrics, owner: 'A' });
    const passA = paused.runPass();
    await pause.atGate;
    // Meanwhile pass B gives b and c two other 12:00 classes.
    await world.schedule('r1', '2026-12-01T12:00:00Z', 50);
    await world.schedule('r2', '2026-12-01T12:00:00Z', 50);
    expect((await world.provisioner('B').runPass()).outcomes).toEqual({ created: 2 });
    pause.open();
    expect((await passA).outcomes).toEqual({ move_blocked: 1 });
    // s1 keeps its meeting (at its old time) and is moved when a host frees up.
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'a', meetingId: old, version: 2, meetingVersion: 1 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(false);
    expect((await world.meetingOf('s1')).error).toMatch(/no other host can take it .*its meeting stays as it was/);
    expect(world.em.overlaps({ activeOnly: true })).toEqual([]);
  });
});
