import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.ts';
import { toDate } from '../../src/db/row.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { createZoomWebhookRuntime, MAX_ATTEMPTS, type OnRecording, type ZoomWebhookRuntime } from '../../src/monitor/event-processor.ts';
import { insertMeetingEvent } from '../../src/monitor/events.ts';
import { parseZoomEnvelope } from '../../src/zoom/webhook.ts';
import { dialects } from '../support/databases.ts';
import { breakParticipantInserts, eventRows, HOSTS, liveOf, openMonitorHarness, SCHOOL, type MonitorHarness } from './support.ts';

let h: MonitorHarness;
const opened: MonitorHarness[] = [];
const runtimes: ZoomWebhookRuntime[] = [];
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop();
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

/**
 * The harness's runtime swapped for one with a fixed backoff jitter (0.5: the first retry waits
 * 2.5 s) and, optionally, its own onRecording.
 */
async function ownRuntime(onRecording?: OnRecording): Promise<{ runtime: ZoomWebhookRuntime; metrics: Metrics }> {
  await h.runtime.stop();
  const metrics = createMetrics();
  const runtime = createZoomWebhookRuntime({ db: h.database.db, clock: h.clock, config: h.config, logger: h.logger, metrics, onRecording, random: () => 0.5 });
  runtimes.push(runtime);
  runtime.start();
  await runtime.idle();
  return { runtime, metrics };
}

async function retryState() {
  const rows = await h.database.db.selectFrom('meeting_events').select(['event', 'attempts', 'retry_at', 'processed_at', 'outcome', 'error']).orderBy('id').execute();
  return rows.map((r) => ({ ...r, retry_at: r.retry_at === null ? null : toDate(r.retry_at) }));
}

async function counted(metrics: Metrics, event: string, outcome: string): Promise<number> {
  return (await metrics.zoomWebhookEvents.get()).values.filter((v) => v.labels.event === event && v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
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
    const [row] = await retryState();
    // Failed on the first pass, not retried: the stored bytes will not change.
    expect(row).toMatchObject({ outcome: 'failed', error: expect.stringContaining('stored payload: event_ts'), attempts: 0, retry_at: null });
    expect(row?.processed_at).not.toBeNull();
  });

  it('an event whose application fails transiently waits out its backoff, then is applied once', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    const { runtime, metrics } = await ownRuntime();
    const heal = await breakParticipantInserts(h);
    const t0 = h.clock.now().getTime();
    const meeting = { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id };
    await store('meeting.started', t0, meeting);
    await store('meeting.participant_joined', t0 + 1, { ...meeting, participant: { user_name: 'Alice', participant_uuid: 'PA', id: '' } });
    runtime.wake();
    await runtime.idle();

    // Rolled back (claim included) and deferred, not failed: 2.5 s = half the 5 s first backoff ceiling.
    const [started, joined] = await retryState();
    expect(started).toMatchObject({ outcome: 'applied', attempts: 0 });
    expect(joined).toMatchObject({ processed_at: null, attempts: 1, error: expect.stringContaining('simulated transient failure') });
    expect(joined?.retry_at?.getTime()).toBe(h.clock.now().getTime() + 2500);
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 0 });

    // Healed, but the backoff has not passed: a pass now leaves it alone.
    await heal();
    await h.clock.advance(2499);
    runtime.wake();
    await runtime.idle();
    expect((await retryState())[1]).toMatchObject({ processed_at: null, attempts: 1 });

    await h.clock.advance(1);
    runtime.wake();
    await runtime.idle();
    expect((await retryState())[1]).toMatchObject({ outcome: 'applied', attempts: 1, error: null, processed_at: expect.anything() });
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 1, peak: 1 });
    expect(await counted(metrics, 'meeting.participant_joined', 'applied')).toBe(1);
    expect(await counted(metrics, 'meeting.participant_joined', 'failed')).toBe(0);
  });

  it('the sweep skips an event whose retry is not due yet and applies it after', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    await h.runtime.idle();
    const sweepMs = h.config.current().monitor.eventSweep.ms;
    await store('meeting.started', h.clock.now().getTime(), { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id });
    // As a few failed tries left it: due a little more than two sweeps from now.
    const due = new Date(h.clock.now().getTime() + 2 * sweepMs + 1000);
    await h.database.db.updateTable('meeting_events').set({ attempts: 3, retry_at: due, error: 'connection reset' }).execute();

    await h.clock.advance(2 * sweepMs);
    await h.runtime.idle();
    expect((await retryState())[0]).toMatchObject({ processed_at: null, attempts: 3 });
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: null });

    await h.clock.advance(sweepMs); // the first sweep after `due`
    await h.runtime.idle();
    expect((await retryState())[0]).toMatchObject({ outcome: 'applied', attempts: 3, error: null });
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started' });
  });

  it(`an event that keeps failing is given up after ${MAX_ATTEMPTS} attempts, with the last error`, async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    const { runtime, metrics } = await ownRuntime();
    await breakParticipantInserts(h);
    await store('meeting.participant_joined', h.clock.now().getTime(), { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id, participant: { user_name: 'Alice', participant_uuid: 'PA', id: '' } });
    await h.database.db.updateTable('meeting_events').set({ attempts: MAX_ATTEMPTS - 1, error: 'earlier' }).execute();
    runtime.wake();
    await runtime.idle();
    const [row] = await retryState();
    expect(row).toMatchObject({ outcome: 'failed', attempts: MAX_ATTEMPTS, retry_at: null, error: expect.stringMatching(new RegExp(`^gave up after ${MAX_ATTEMPTS} attempts: .*simulated transient failure`)) });
    expect(row?.processed_at).not.toBeNull();
    expect(await counted(metrics, 'meeting.participant_joined', 'failed')).toBe(1);
    expect(await liveOf(h, scheduleId)).toMatchObject({ attendance: 0 });
  });

  it('recording.completed is retried when onRecording throws, and finished with its outcome', async () => {
    h = await open(dialect);
    const { meetingId } = await h.schedule('c1');
    // REC's hook failing once, as when its own database write hits a dropped connection.
    const calls: unknown[] = [];
    const { runtime } = await ownRuntime(async (_accountId, object) => {
      calls.push(object);
      if (calls.length === 1) throw new Error('connection terminated unexpectedly');
      return 'recordings: 1 new, 0 refreshed, 0 already stored';
    });
    await store('recording.completed', h.clock.now().getTime(), { id: meetingId, uuid: 'U-1', host_id: HOSTS.t1.id, recording_files: [] });
    runtime.wake();
    await runtime.idle();
    expect((await retryState())[0]).toMatchObject({ processed_at: null, attempts: 1, error: 'connection terminated unexpectedly' });

    await h.clock.advance(2500);
    runtime.wake();
    await runtime.idle();
    expect(calls).toHaveLength(2);
    expect((await retryState())[0]).toMatchObject({ outcome: 'recordings: 1 new, 0 refreshed, 0 already stored', attempts: 1, error: null, processed_at: expect.anything() });
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
