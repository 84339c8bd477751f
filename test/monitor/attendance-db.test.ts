import { afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { toBool } from '../../src/db/row.ts';
import { inTransaction } from '../../src/db/transaction.ts';
import { applyMeetingEvent } from '../../src/monitor/events.ts';
import { applyLiveSnapshot, applyLiveStatus, recountAttendance, upsertParticipant } from '../../src/monitor/live.ts';
import { parseZoomEnvelope, type ZoomWebhookEvent } from '../../src/zoom/webhook.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

let database: TestDatabase;
const opened: TestDatabase[] = [];
afterEach(async () => {
  for (const d of opened.splice(0)) await d.close();
});
async function openDb(dialect: Parameters<typeof openTestDatabase>[0]): Promise<TestDatabase> {
  const d = await openTestDatabase(dialect);
  opened.push(d);
  return d;
}

const T0 = Date.parse('2026-12-01T01:00:00Z');
const at = (s: number): Date => new Date(T0 + s * 1000);
const MEETING = '81234567890';

async function addSchedule(db: Db, meetingId = MEETING): Promise<number> {
  const now = at(0);
  const row = await db
    .insertInto('schedules')
    .values({ external_id: `s-${meetingId}`, title: 'A1', starts_at: now, ends_at: at(3000), trial: false, min_participants: 0, feedback_url: null, cancelled: false, version: 1, meeting_state: 'ready', meeting_id: meetingId, created_at: now, updated_at: now })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

async function live(db: Db, id: number) {
  const r = await db.selectFrom('schedules').select(['live_status', 'live_started_at', 'live_ended_at', 'attendance', 'attendance_peak', 'attendance_checked_at']).where('id', '=', id).executeTakeFirstOrThrow();
  const time = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
  return { status: r.live_status, startedAt: time(r.live_started_at), endedAt: time(r.live_ended_at), attendance: r.attendance, peak: r.attendance_peak, checkedAt: time(r.attendance_checked_at) };
}

async function present(db: Db, id: number): Promise<string[]> {
  const rows = await db.selectFrom('meeting_participants').select(['participant_key', 'present']).where('schedule_id', '=', id).orderBy('participant_key').execute();
  return rows.filter((r) => toBool(r.present)).map((r) => r.participant_key);
}

function event(name: string, s: number, uuid = 'U-1', participant?: Record<string, unknown>): ZoomWebhookEvent {
  const parsed = parseZoomEnvelope({ event: name, event_ts: at(s).getTime(), payload: { object: { id: MEETING, uuid, host_id: 'user-host', ...(participant ? { participant } : {}) } } });
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.event;
}

const apply = (e: ZoomWebhookEvent, hosts: string[] = ['user-staff']) => inTransaction(database.db, (trx) => applyMeetingEvent(trx, at(9999), e, new Set(hosts)));

function permutations<T>(xs: T[]): T[][] {
  return xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

describe.each(dialects)('attendance in the database on %s', (dialect) => {
  it('started/ended in any order (with a restart) end in the same live state', async () => {
    database = await openDb(dialect);
    const history = [event('meeting.started', 10, 'U-1'), event('meeting.ended', 20, 'U-1'), event('meeting.started', 30, 'U-2')];
    const finals = new Set<string>();
    for (const order of permutations(history)) {
      await database.db.deleteFrom('schedules').execute();
      const id = await addSchedule(database.db);
      for (const e of order) await apply(e);
      finals.add(JSON.stringify(await live(database.db, id)));
    }
    expect([...finals].map((f) => JSON.parse(f) as unknown)).toEqual([{ status: 'started', startedAt: at(30).toISOString(), endedAt: at(20).toISOString(), attendance: 0, peak: 0, checkedAt: at(9999).toISOString() }]);
  });

  it('joins and leaves in any order converge; the end makes everyone leave; a join after the end does not count', async () => {
    database = await openDb(dialect);
    const alice = { user_name: 'Alice', participant_uuid: 'PA', id: '' };
    const bob = { user_name: 'Bob', participant_user_id: 'zu-bob', id: 'zu-bob' };
    const history = [event('meeting.participant_joined', 1, 'U-1', alice), event('meeting.participant_left', 5, 'U-1', alice), event('meeting.participant_joined', 7, 'U-1', alice), event('meeting.participant_joined', 2, 'U-1', bob)];
    const finals = new Set<string>();
    for (const order of permutations(history)) {
      await database.db.deleteFrom('schedules').execute();
      await database.db.deleteFrom('meeting_participants').execute();
      const id = await addSchedule(database.db);
      for (const e of order) await apply(e);
      finals.add(JSON.stringify({ present: await present(database.db, id), attendance: (await live(database.db, id)).attendance }));
    }
    expect([...finals]).toEqual([JSON.stringify({ present: ['puid:zu-bob', 'uuid:PA'], attendance: 2 })]);

    const id = (await database.db.selectFrom('schedules').select('id').executeTakeFirstOrThrow()).id;
    await database.db.insertInto('meeting_events').values({ account_id: 'a', event_key: 'end-1', event: 'meeting.ended', meeting_id: MEETING, meeting_uuid: 'U-1', event_at: at(10), payload: '{}', received_at: at(10) }).execute();
    expect(await apply(event('meeting.ended', 10, 'U-1'))).toBe('applied');
    expect(await present(database.db, id)).toEqual([]);
    expect(await live(database.db, id)).toMatchObject({ status: 'ended', attendance: 0, peak: 2 });
    // Carol's join (stamped before the end) arrives late: she is recorded, as having left at the end.
    expect(await apply(event('meeting.participant_joined', 8, 'U-1', { user_name: 'Carol', participant_uuid: 'PC' }))).toBe('applied');
    expect(await present(database.db, id)).toEqual([]);
    const carol = await database.db.selectFrom('meeting_participants').selectAll().where('participant_key', '=', 'uuid:PC').executeTakeFirstOrThrow();
    expect(new Date(carol.left_at ?? 0).toISOString()).toBe(at(10).toISOString());
  });

  it('roles: the host and pool hosts are kept but never counted', async () => {
    database = await openDb(dialect);
    const id = await addSchedule(database.db);
    await apply(event('meeting.participant_joined', 1, 'U-1', { user_name: 'Host', id: 'user-host' }));
    await apply(event('meeting.participant_joined', 2, 'U-1', { user_name: 'Staff', id: '', email: 'USER-STAFF' }));
    await apply(event('meeting.participant_joined', 3, 'U-1', { user_name: 'Student', participant_uuid: 'P1' }));
    const roles = await database.db.selectFrom('meeting_participants').select(['user_name', 'role']).orderBy('user_name').execute();
    expect(roles).toEqual([
      { user_name: 'Host', role: 'host' },
      { user_name: 'Staff', role: 'staff' },
      { user_name: 'Student', role: 'student' },
    ]);
    expect(await live(database.db, id)).toMatchObject({ attendance: 1, peak: 1 });
    expect(await apply(event('meeting.participant_joined', 3, 'U-x', { user_name: 'Elsewhere' }))).toBe('applied');
    const nowhere = parseZoomEnvelope({ event: 'meeting.started', event_ts: 1, payload: { object: { id: '1', uuid: 'x' } } });
    if (!nowhere.ok) throw new Error(nowhere.problem);
    expect(await apply(nowhere.event)).toBe('ignored: no schedule for meeting 1');
  });

  it('recount: distinct present students across instances; peak only grows', async () => {
    database = await openDb(dialect);
    const id = await addSchedule(database.db);
    const base = { scheduleId: id, meetingId: MEETING, name: null, email: null, role: 'student' as const };
    await inTransaction(database.db, async (trx) => {
      await upsertParticipant(trx, { ...base, meetingUuid: 'U-1', key: 'k1', present: true, at: at(1) });
      await upsertParticipant(trx, { ...base, meetingUuid: 'U-2', key: 'k1', present: true, at: at(2) });
      await upsertParticipant(trx, { ...base, meetingUuid: 'U-2', key: 'k2', present: true, at: at(2) });
      await upsertParticipant(trx, { ...base, meetingUuid: 'U-2', key: 'k3', present: true, at: at(2), role: 'staff' });
    });
    expect(await recountAttendance(database.db, at(3), id)).toBe(2);
    expect(await live(database.db, id)).toMatchObject({ attendance: 2, peak: 2, checkedAt: at(3).toISOString() });
    await upsertParticipant(database.db, { ...base, meetingUuid: 'U-2', key: 'k2', present: false, at: at(4) });
    expect(await recountAttendance(database.db, at(5), id)).toBe(1);
    expect(await live(database.db, id)).toMatchObject({ attendance: 1, peak: 2 });
  });

  it('applyLiveStatus (the poll): waiting, started, a missed end, and waiting never undoes ended', async () => {
    database = await openDb(dialect);
    const id = await addSchedule(database.db);
    expect(await applyLiveStatus(database.db, at(1), id, 'waiting')).toBe('waiting');
    expect(await live(database.db, id)).toMatchObject({ status: 'waiting', startedAt: null });
    expect(await applyLiveStatus(database.db, at(2), id, 'started')).toBe('started');
    expect(await applyLiveStatus(database.db, at(3), id, 'started')).toBe('started');
    expect(await live(database.db, id)).toMatchObject({ status: 'started', startedAt: at(2).toISOString() });
    await apply(event('meeting.participant_joined', 2.5, 'U-1', { user_name: 'Alice', participant_uuid: 'PA' }));
    expect(await live(database.db, id)).toMatchObject({ attendance: 1 });
    // The API reports an ended meeting as waiting: the end was missed.
    expect(await applyLiveStatus(database.db, at(4), id, 'waiting')).toBe('ended');
    expect(await live(database.db, id)).toMatchObject({ status: 'ended', endedAt: at(4).toISOString(), attendance: 0, peak: 1 });
    expect(await present(database.db, id)).toEqual([]);
    expect(await applyLiveStatus(database.db, at(5), id, 'waiting')).toBe('ended');
    expect(await applyLiveStatus(database.db, at(6), 999_999, 'started')).toBeNull();
  });

  it('applyLiveSnapshot (the poll): exactly those listed are present, everyone else has left', async () => {
    database = await openDb(dialect);
    const id = await addSchedule(database.db);
    await apply(event('meeting.participant_joined', 1, 'U-1', { user_name: 'Alice', participant_uuid: 'PA' }));
    await apply(event('meeting.participant_joined', 2, 'U-1', { user_name: 'Bob', participant_uuid: 'PB' }));
    const snapshot = {
      scheduleId: id,
      meetingId: MEETING,
      meetingUuid: 'U-1',
      hostId: 'user-host',
      participants: [
        { key: 'uuid:PB', name: 'Bob', email: null, role: 'student' as const },
        { key: 'uuid:PC', name: 'Carol', email: 'c@example.com', role: 'student' as const },
        { key: 'id:user-host', name: 'Host', email: null, role: 'host' as const },
      ],
    };
    expect(await applyLiveSnapshot(database.db, at(10), snapshot)).toBe(2);
    expect(await present(database.db, id)).toEqual(['id:user-host', 'uuid:PB', 'uuid:PC']);
    expect(await live(database.db, id)).toMatchObject({ attendance: 2, peak: 2, checkedAt: at(10).toISOString() });
    // A webhook older than the snapshot changes nothing; a newer one does.
    expect(await apply(event('meeting.participant_left', 9, 'U-1', { user_name: 'Carol', participant_uuid: 'PC' }))).toBe('stale');
    expect(await apply(event('meeting.participant_left', 11, 'U-1', { user_name: 'Carol', participant_uuid: 'PC' }))).toBe('applied');
    expect(await applyLiveSnapshot(database.db, at(12), { ...snapshot, participants: [] })).toBe(0);
    expect(await present(database.db, id)).toEqual([]);
    expect(await live(database.db, id)).toMatchObject({ attendance: 0, peak: 2 });
  });
});
