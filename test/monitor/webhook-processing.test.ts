import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createZoomWebhookRuntime, insertMeetingEvent } from '../../src/monitor/events.ts';
import { parseZoomEnvelope } from '../../src/zoom/webhook.ts';
import { dialects } from '../support/databases.ts';
import { eventRows, HOSTS, liveOf, openMonitorHarness, SCHOOL, type MonitorHarness } from './support.ts';

let h: MonitorHarness;
const opened: MonitorHarness[] = [];
afterEach(async () => {
  for (const harness of opened.splice(0)) await harness.close();
});
async function open(...args: Parameters<typeof openMonitorHarness>): Promise<MonitorHarness> {
  const harness = await openMonitorHarness(...args);
  opened.push(harness);
  return harness;
}

/** Stores an event as the route does after verifying it, without waking anyone (a crash right after the 200). */
async function store(event: string, at: number, object: Record<string, unknown>): Promise<void> {
  const parsed = parseZoomEnvelope({ event, event_ts: at, payload: { account_id: SCHOOL, object } });
  if (!parsed.ok) throw new Error(parsed.problem);
  await insertMeetingEvent(h.database.db, h.clock, SCHOOL, parsed);
}

describe.each(dialects)('Zoom webhook processing on %s', (dialect) => {
  it('events stored but not processed (a crash after the ack) are applied by the next sweep', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    await h.runtime.idle(); // the pass at start
    const t0 = h.clock.now().getTime();
    const meeting = { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id };
    await store('meeting.started', t0, meeting);
    await store('meeting.participant_joined', t0 + 1, { ...meeting, participant: { user_name: 'Alice', participant_uuid: 'PA', id: '' } });
    await h.clock.advance(1000);
    expect((await eventRows(h)).map((r) => r.processed_at)).toEqual([null, null]);
    await h.clock.advance(h.config.current().monitor.eventSweep.ms);
    await h.runtime.idle();
    expect((await eventRows(h)).map((r) => r.outcome)).toEqual(['applied', 'applied']);
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 1, peak: 1 });
  });

  it('a stored event that cannot be applied is set aside as failed, with the reason', async () => {
    h = await open(dialect);
    const now = h.clock.now();
    await h.database.db
      .insertInto('meeting_events')
      .values({ account_id: SCHOOL, event_key: 'garbage-1', event: 'meeting.started', meeting_id: '1', meeting_uuid: 'u', event_at: now, payload: JSON.stringify({ event: 'meeting.started' }), received_at: now })
      .execute();
    h.runtime.wake();
    await h.runtime.idle();
    const [row] = await eventRows(h);
    expect(row).toMatchObject({ outcome: 'failed', error: expect.stringContaining('stored payload: event_ts') });
    expect(row?.processed_at).not.toBeNull();
  });

  it('two replicas working the same stored events apply each exactly once', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    const t0 = h.clock.now().getTime();
    const meeting = { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id };
    await store('meeting.started', t0, meeting);
    const students = Array.from({ length: 20 }, (_, i) => ({ user_name: `S${i}`, participant_uuid: `P${i}`, id: '' }));
    for (const [i, p] of students.entries()) await store('meeting.participant_joined', t0 + 1000 + i, { ...meeting, participant: p });
    for (const [i, p] of students.slice(0, 8).entries()) await store('meeting.participant_left', t0 + 5000 + i, { ...meeting, participant: p });
    await store('meeting.participant_joined', t0 + 6000, { ...meeting, participant: { user_name: 'Teacher', id: HOSTS.t1.id, participant_user_id: HOSTS.t1.id } });

    // The second replica: its own connection pool (PostgreSQL) and its own metrics.
    const second = h.database.dialect === 'postgres' ? await openDatabase(h.database.url, { schema: h.database.schema ?? 'public', poolSize: 3 }) : undefined;
    const metricsB = createMetrics();
    const b = createZoomWebhookRuntime({ db: second?.db ?? h.database.db, clock: h.clock, config: h.config, logger: h.logger, metrics: metricsB });
    try {
      h.runtime.wake();
      b.wake();
      await Promise.all([h.runtime.idle(), b.idle()]);
    } finally {
      await b.stop();
      await second?.close();
    }
    const total = async (m: typeof metricsB) => (await m.zoomWebhookEvents.get()).values.reduce((n, v) => n + v.value, 0);
    expect((await total(h.metrics)) + (await total(metricsB))).toBe(30);
    const rows = await eventRows(h);
    expect(rows).toHaveLength(30);
    expect(rows.every((r) => r.outcome === 'applied')).toBe(true);
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 12, peak: 20 });
  });
});
