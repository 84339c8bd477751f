import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../../src/sandbox/zoom/meeting-store.ts';
import { meetingWindow, overlapKind } from '../../../src/sandbox/zoom/rules.ts';
import { parseStartTime } from '../../../src/sandbox/zoom/time.ts';
import { BIZ, FREE, type Harness, PRO, call, createMeeting, meetingBody, requestToken, start } from './helpers.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.em.close();
  h = undefined;
});

const at = (iso: string, duration: number, jbh: boolean, jbhTime: 0 | 5 | 10 = 0) =>
  meetingWindow({ startTime: new Date(iso), duration, settings: { ...DEFAULT_SETTINGS, join_before_host: jbh, jbh_time: jbhTime } }, 15);

describe('overlap rule (pure)', () => {
  it('tells scheduled overlaps from join-before-host ones; back-to-back is fine', () => {
    const a = at('2026-03-02T10:00:00Z', 60, false);
    expect(overlapKind(a, at('2026-03-02T10:30:00Z', 60, false))).toBe('scheduled');
    expect(overlapKind(a, at('2026-03-02T11:00:00Z', 60, false))).toBeNull();
    expect(overlapKind(a, at('2026-03-02T11:05:00Z', 60, true, 10))).toBe('join-before-host');
    expect(overlapKind(a, at('2026-03-02T11:05:00Z', 60, true, 5))).toBeNull();
    expect(overlapKind(a, at('2026-03-02T11:10:00Z', 60, true, 0))).toBe('join-before-host'); // "any time" = 15 min lead
    expect(overlapKind(a, at('2026-03-02T11:15:00Z', 60, true, 0))).toBeNull();
  });

  it('parses Zoom start times, including across a DST switch', () => {
    expect(parseStartTime('2026-03-08T01:30:00', 'America/New_York')?.toISOString()).toBe('2026-03-08T06:30:00.000Z');
    expect(parseStartTime('2026-03-08T03:30:00', 'America/New_York')?.toISOString()).toBe('2026-03-08T07:30:00.000Z');
    expect(parseStartTime('2026-03-02T10:00:00.250Z', 'Asia/Tokyo')?.toISOString()).toBe('2026-03-02T10:00:00.000Z');
    expect(parseStartTime('2026-03-02T10:00', 'UTC')).toBeNull();
  });
});

describe('Zoom emulator: overlap detection', () => {
  it('records (but accepts) a host’s overlapping meetings, and only those', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    const a = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T10:00:00Z', duration: 60 });
    await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T11:00:00Z', duration: 60, settings: { join_before_host: false } });
    await createMeeting(h.em, token, 'host-b', { start_time: '2026-03-02T10:30:00Z' });
    expect(h.em.overlaps()).toEqual([]);

    const b = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T10:45:00Z', duration: 30 });
    expect(h.em.overlaps()).toEqual([
      expect.objectContaining({ hostId: 'host-a', meetingIds: [Math.min(a.id, b.id), Math.max(a.id, b.id)], kind: 'scheduled', active: true }),
      expect.objectContaining({ hostId: 'host-a', kind: 'scheduled', active: true }),
    ]);
    await call(h.em, token, 'DELETE', `/meetings/${b.id}`);
    expect(h.em.overlaps({ activeOnly: true })).toEqual([]);
    expect(h.em.overlaps()).toHaveLength(2);
  });

  it('counts the join-before-host lead, and re-evaluates after PATCH', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T10:00:00Z', duration: 60 });
    const b = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T11:05:00Z', settings: { join_before_host: true, jbh_time: 10 } });
    expect(h.em.overlaps()).toEqual([expect.objectContaining({ kind: 'join-before-host', active: true })]);
    await call(h.em, token, 'PATCH', `/meetings/${b.id}`, { start_time: '2026-03-02T12:00:00Z' });
    expect(h.em.overlaps({ activeOnly: true })).toEqual([]);
    expect(h.em.overlaps()[0]).toMatchObject({ active: false, resolvedAt: '2026-03-02T08:00:00.000Z' });
  });
});

describe('Zoom emulator: Basic hosts and live meetings', () => {
  it('accepts a Basic host’s 60-minute meeting but records the 40-minute violation', async () => {
    h = await start();
    const token = await requestToken(h.em, FREE);
    await createMeeting(h.em, token, 'basic-1', { duration: 40 });
    expect(h.em.violations()).toEqual([]);
    await h.clock.advance(1000);
    const long = await createMeeting(h.em, token, 'basic-1', { duration: 60, start_time: '2026-03-03T10:00:00Z' });
    expect(h.em.violations()).toEqual([expect.objectContaining({ kind: 'basic-over-40-min', meetingId: long.id, hostId: 'basic-1' })]);
  });

  it('stores auto_recording none for a Basic host asking for cloud (or refuses when configured)', async () => {
    h = await start();
    const token = await requestToken(h.em, FREE);
    const res = await call(h.em, token, 'POST', '/users/basic-1/meetings', meetingBody({ duration: 30, settings: { auto_recording: 'cloud' } }));
    expect(res).toMatchObject({ status: 201, body: { settings: { auto_recording: 'none' } } });
    expect(h.em.violations()).toEqual([expect.objectContaining({ kind: 'cloud-recording-unavailable' })]);
    const pro = await requestToken(h.em, PRO);
    expect(await call(h.em, pro, 'POST', '/users/host-a/meetings', meetingBody({ settings: { auto_recording: 'cloud' } }))).toMatchObject({
      status: 201,
      body: { settings: { auto_recording: 'cloud' } },
    });
    await h.em.close();

    h = await start({ basicCloudRecording: 'reject' });
    const strict = await requestToken(h.em, FREE);
    expect(await call(h.em, strict, 'POST', '/users/basic-1/meetings', meetingBody({ duration: 30, settings: { auto_recording: 'cloud' } }))).toMatchObject({
      status: 400,
      body: { code: 300 },
    });
    expect(h.em.meetings()).toHaveLength(0);
  });

  it('lets a host run one live meeting; a second start is refused and recorded as host-busy', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    const a = await createMeeting(h.em, token, 'host-a');
    const b = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T14:00:00Z' });
    expect(h.em.startMeeting(a.id).started).toBe(true);
    expect(h.em.startMeeting(a.id)).toEqual({ started: false, reason: 'already-started' });
    expect(h.em.startMeeting(b.id)).toEqual({ started: false, reason: 'host-busy' });
    expect(h.em.startMeeting(b.id, { by: 'host' })).toEqual({ started: false, reason: 'host-busy' }); // Pro: 1 even for the host
    expect(h.em.violations().map((v) => v.kind)).toEqual(['host-busy', 'host-busy']);
    h.em.endMeeting(a.id);
    expect(h.em.startMeeting(b.id).started).toBe(true);
  });

  it('gives a Business licensed host a second live meeting only when the host starts it', async () => {
    h = await start();
    const token = await requestToken(h.em, BIZ);
    const a = await createMeeting(h.em, token, 'biz-1');
    const b = await createMeeting(h.em, token, 'biz-1', { start_time: '2026-03-02T14:00:00Z' });
    expect(h.em.startMeeting(a.id).started).toBe(true);
    expect(h.em.startMeeting(b.id).started).toBe(false);
    expect(h.em.startMeeting(b.id, { by: 'host' }).started).toBe(true);
  });

  it('ends a Basic host’s live meeting after 40 minutes of the clock', async () => {
    h = await start();
    const token = await requestToken(h.em, FREE);
    const m = await createMeeting(h.em, token, 'basic-1', { duration: 30 });
    const events: string[] = [];
    h.em.onEvent((e) => events.push(`${e.type}:${e.meeting.state}`));
    h.em.startMeeting(m.id);
    await h.clock.advance(40 * 60_000 - 1);
    expect(h.em.meeting(m.id)?.state).toBe('started');
    await h.clock.advance(1);
    expect(h.em.meeting(m.id)?.state).toBe('ended');
    expect(events).toEqual(['meeting.started:started', 'meeting.ended:ended']);
    expect(h.clock.pendingTimers()).toBe(0);
  });
});
