import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

/** Failures of meeting work: never a second meeting, never a pool stopped by one host, never retried for ever. */
describe.each(dialects)('meeting work failures on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const live = () => world.em.meetings().filter((m) => !m.deleted);
  const row = (externalId = 's1') => world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', externalId).executeTakeFirstOrThrow();

  /** The database refuses to record a meeting (a join URL), as a lost connection would. Returns how to heal it. */
  const failRecordingMeetings = async (): Promise<() => Promise<void>> => {
    const { db } = world.database;
    if (dialect === 'sqlite') {
      await sql.raw(`create trigger fail_record before update of join_url on schedules when new.join_url is not null begin select raise(abort, 'simulated database failure'); end`).execute(db);
      return async () => void (await sql.raw('drop trigger fail_record').execute(db));
    }
    await sql.raw(`create or replace function fail_record() returns trigger language plpgsql as $$ begin raise exception 'simulated database failure'; end $$`).execute(db);
    await sql.raw(`create trigger fail_record before update on schedules for each row when (new.join_url is not null) execute function fail_record()`).execute(db);
    return async () => void (await sql.raw('drop trigger fail_record on schedules').execute(db));
  };

  it('keeps the intent when recording a created meeting fails, and adopts that meeting instead of making a second', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], { config: { zoom: { provisioning: { retryDelay: '1m' } } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const heal = await failRecordingMeetings();
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unrecorded: 1 });
    await heal();
    expect((await world.meetingOf('s1')).state).toBe('creating');
    await world.clock.advance(3 * 60_000); // the lease runs out
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    expect(live()).toHaveLength(1);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: String(live()[0]?.id) });
  });

  it('adopts the meeting when Zoom answers a create with a 2xx it cannot parse, instead of failing and making a second', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], { config: { zoom: { provisioning: { retryDelay: '1m' } } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'after-commit-error', status: 201, body: '<html>ok</html>' } });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    await world.clock.advance(2 * 60_000);
    await world.provisioner().runPass();
    expect(live()).toHaveLength(1);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: String(live()[0]?.id) });
  });

  it('leaves out a host whose secret cannot be decrypted, says so, and provisions on the others', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }]);
    await world.database.db.updateTable('zoom_accounts').set({ client_secret: 'v1:not-a-real-ciphertext' }).where('label', '=', 'b').execute();
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T10:30:00Z', 50); // overlaps s1: only b could take it
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1, no_capacity: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'a' });
    expect((await world.meetingOf('s2')).error).toMatch(/b: its client secret cannot be decrypted/);
    expect((await row('s2')).meeting_lease_owner).toBeNull();
  });

  it('fails over within the pass when Zoom refuses a host for good (user gone), and says why', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    world.em.faults.add({ method: 'POST', path: /\/users\/user-a\/meetings$/, times: Infinity, fault: { status: 404, body: { code: 1001, message: 'User does not exist: user-a' } } });
    for (let i = 0; i < 4; i++) await world.schedule(`s${i}`, `2026-12-01T1${i * 2}:00:00Z`, 50);
    await world.schedule('clash', '2026-12-01T10:30:00Z', 50); // overlaps s0: only a could take it
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 4, no_capacity: 1 });
    for (let i = 0; i < 4; i++) expect(await world.meetingOf(`s${i}`)).toMatchObject({ state: 'ready', host: 'b' });
    expect((await world.meetingOf('clash')).error).toMatch(/a: refused by Zoom: Zoom answered 404 code 1001/);
    // Asked once in the pass, not once per class.
    expect(world.em.requests().filter((r) => r.method === 'POST' && r.path.includes('user-a'))).toHaveLength(1);
  });

  it('treats a meeting Zoom says has ended (3007) as deleted when its class is cancelled', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    world.em.faults.add({ method: 'DELETE', path: /\/meetings\/\d+$/, times: Infinity, fault: { status: 400, body: { code: 3007, message: 'Sorry, you cannot delete this meeting since it has ended.' } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50, { cancelled: true });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ deleted: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'deleted', error: null });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
  });

  it('backs off a DELETE Zoom keeps refusing, and gives up some days after the class with a reason', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    world.em.faults.add({ method: 'DELETE', path: /\/meetings\/\d+$/, times: Infinity, fault: { status: 400, body: { code: 3003, message: "You're not the meeting host." } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50, { cancelled: true });
    const deletes = () => world.em.requests().filter((r) => r.method === 'DELETE').length;
    // A pass a minute for half an hour: tries at +0, +5 and +15 minutes (5, 10, 20 minutes apart).
    for (let i = 0; i < 30; i++) {
      await world.provisioner().runPass();
      await world.clock.advance(60_000);
    }
    expect(deletes()).toBe(3);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', error: expect.stringContaining('3003') });
    // Three days after the class, the last try gives up and says what to do.
    await world.clock.set(new Date('2026-12-04T11:00:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ delete_abandoned: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'failed', error: expect.stringMatching(/gave up deleting meeting \d+ .*3003.*by hand/) });
    await world.clock.advance(86_400_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    expect(deletes()).toBe(4);
  });
});
