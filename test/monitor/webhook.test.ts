import { afterEach, describe, expect, it } from 'vitest';
import { fromJson } from '../../src/db/row.ts';
import { updateZoomAccount } from '../../src/zoom/accounts.ts';
import { signZoomBody } from '../../src/zoom/webhook.ts';
import { dialects } from '../support/databases.ts';
import { countEvents, eventRows, HOSTS, liveOf, openMonitorHarness, OTHER, OTHER_SECRET, participantsOf, SCHOOL, SCHOOL_SECRET, SILENT, type MonitorHarness } from './support.ts';

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

/** A POST as we choose to sign it (the cases Zoom itself would never send). */
async function post(accountId: string, body: string, sign: { secret?: string; ts?: number; signature?: string } = {}): Promise<{ status: number; body: unknown }> {
  const ts = sign.ts ?? Math.floor(h.clock.now().getTime() / 1000);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (sign.secret !== undefined || sign.signature !== undefined) {
    headers['x-zm-request-timestamp'] = String(ts);
    headers['x-zm-signature'] = sign.signature ?? signZoomBody(sign.secret ?? '', ts, body);
  }
  const res = await fetch(`${h.base}/webhooks/zoom/${encodeURIComponent(accountId)}`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
}

const envelope = (event: string, object: Record<string, unknown>, at = h.clock.now().getTime()) => JSON.stringify({ event, event_ts: at, payload: { account_id: SCHOOL, object } });

describe.each(dialects)('Zoom webhooks on %s', (dialect) => {
  it('answers URL validation (signed, HMAC of the plainToken) and stores nothing', async () => {
    h = await open(dialect);
    expect(await h.em.webhooks.validate(SCHOOL)).toMatchObject({ ok: true, status: 200 });
    expect(await h.em.webhooks.validate(OTHER)).toMatchObject({ ok: true, status: 200 });
    // Rotation: a new token on one row of the account, the old one still on the other; both validate.
    const t1 = await h.database.db.selectFrom('zoom_accounts').select('id').where('label', '=', 't1').executeTakeFirstOrThrow();
    await updateZoomAccount(h.database.db, h.box, h.clock, t1.id, { webhookSecretToken: 'whsec-rotated' });
    h.em.webhooks.subscribe({ accountId: SCHOOL, url: `${h.base}/webhooks/zoom/${SCHOOL}`, secretToken: 'whsec-rotated' });
    expect(await h.em.webhooks.validate(SCHOOL)).toMatchObject({ ok: true });
    expect(await countEvents(h)).toBe(0);
  });

  it('rejects bad requests with the right status and stores nothing', async () => {
    h = await open(dialect, { config: { monitor: { webhookBodyLimitBytes: 2048 } } });
    const { meetingId } = await h.schedule('c1');
    const started = envelope('meeting.started', { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id });
    const now = Math.floor(h.clock.now().getTime() / 1000);
    const cases: Array<[string, () => Promise<{ status: number; body: unknown }>, number, string?]> = [
      ['unknown account', () => post('acc-nobody', started, { secret: SCHOOL_SECRET }), 404],
      ['account without a secret token', () => post(SILENT, started, { secret: SCHOOL_SECRET }), 404],
      ['no signature', () => post(SCHOOL, started), 401],
      ['signed with another account\'s secret', () => post(SCHOOL, started, { secret: OTHER_SECRET }), 401],
      ['signed, then altered', () => post(SCHOOL, started.replace('started', 'ended'), { signature: signZoomBody(SCHOOL_SECRET, now, started) }), 401],
      ['timestamp 6 minutes old', () => post(SCHOOL, started, { secret: SCHOOL_SECRET, ts: now - 360 }), 401, 'webhookTolerance'],
      ['timestamp 6 minutes ahead', () => post(SCHOOL, started, { secret: SCHOOL_SECRET, ts: now + 360 }), 401, 'webhookTolerance'],
      ['malformed JSON', () => post(SCHOOL, '{"event":', { secret: SCHOOL_SECRET }), 400, 'not valid JSON'],
      ['no event_ts', () => post(SCHOOL, JSON.stringify({ event: 'meeting.started', payload: {} }), { secret: SCHOOL_SECRET }), 400, 'event_ts'],
      ['meeting event without uuid', () => post(SCHOOL, envelope('meeting.ended', { id: String(meetingId) }), { secret: SCHOOL_SECRET }), 400, 'payload.object.uuid'],
      ['participant event without participant', () => post(SCHOOL, envelope('meeting.participant_joined', { id: String(meetingId), uuid: 'U-1' }), { secret: SCHOOL_SECRET }), 400, 'participant'],
      ['over monitor.webhookBodyLimitBytes', () => post(SCHOOL, envelope('meeting.started', { id: String(meetingId), uuid: 'U-1', pad: 'x'.repeat(4096) }), { secret: SCHOOL_SECRET }), 413],
    ];
    for (const [name, send, status, message] of cases) {
      const got = await send();
      expect(got.status, name).toBe(status);
      expect(got.body, name).toMatchObject({ error: expect.any(String), message: expect.stringContaining(message ?? '') });
    }
    await h.settle();
    expect(await countEvents(h)).toBe(0);
    expect(h.logs.some((l) => l.includes('missing, wrong or stale signature'))).toBe(true);
  });

  it('a captured delivery replayed after the tolerance is refused; a duplicate delivery counts once', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    h.em.join(meetingId, { name: 'Alice', email: 'alice@example.com' });
    await h.settle();
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 1 });
    const joined = h.em.webhooks.deliveries({ event: 'meeting.participant_joined' });
    expect(joined).toHaveLength(1);
    const original = joined[0];
    if (!original) throw new Error('no delivery');

    // Zoom's duplicate (same bytes, fresh signature) is acknowledged and changes nothing.
    expect(await h.em.webhooks.redeliver(original.id)).toBe(200);
    await h.settle();
    expect(await countEvents(h)).toBe(2);
    expect(await liveOf(h, scheduleId)).toMatchObject({ attendance: 1, peak: 1 });

    // An attacker replays the captured request (its signature is still valid) six minutes later.
    const capturedTs = Math.floor(new Date(original.at).getTime() / 1000);
    const signature = signZoomBody(SCHOOL_SECRET, capturedTs, original.body);
    expect((await post(SCHOOL, original.body, { ts: capturedTs, signature })).status).toBe(200); // within tolerance: a plain duplicate
    await h.clock.advance(6 * 60_000);
    expect(await post(SCHOOL, original.body, { ts: capturedTs, signature })).toMatchObject({ status: 401 });
    await h.settle();
    expect(await countEvents(h)).toBe(2);
    const counter = await h.metrics.zoomWebhookEvents.get();
    const sum = (outcome: string) => counter.values.filter((v) => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
    expect({ duplicate: sum('duplicate'), rejected: sum('rejected'), applied: sum('applied') }).toEqual({ duplicate: 2, rejected: 1, applied: 2 });
    const metrics = await fetch(`${h.base}/metrics`).then((r) => r.text());
    expect(metrics).toContain('scheduler_zoom_webhook_events_total{event="meeting.participant_joined",outcome="duplicate"} 2');
  });

  it('attendance counts students only: the host and every pool account are staff', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    const step = async (action: () => unknown, attendance: number): Promise<void> => {
      await h.clock.advance(1000);
      action();
      await h.settle();
      expect((await liveOf(h, scheduleId)).attendance).toBe(attendance);
    };
    await step(() => h.em.join(meetingId, { name: 'Teacher', role: 'host' }), 0);
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 0, peak: 0 });
    // t2's pool row names its host by email; o1 is a host of another Zoom account of ours.
    await step(() => h.em.join(meetingId, { name: 'Assistant', email: HOSTS.t2.email, userId: HOSTS.t2.id }), 0);
    await step(() => h.em.join(meetingId, { name: 'Observer', email: HOSTS.o1.email, userId: HOSTS.o1.id }), 0);
    let alice = '';
    await step(() => (alice = h.em.join(meetingId, { name: 'Alice', email: 'alice@example.com' })), 1);
    let bob = '';
    await step(() => (bob = h.em.join(meetingId, { name: 'Bob', email: 'bob@example.com', userId: 'zu-bob' })), 2);
    await step(() => h.em.join(meetingId, { name: 'Guest' }), 3);
    await step(() => h.em.leave(meetingId, alice), 2);
    await step(() => h.em.leave(meetingId, bob), 1);
    // Bob comes back (a signed-in user: the same key) and is counted again, once.
    await step(() => (bob = h.em.join(meetingId, { name: 'Bob', email: 'bob@example.com', userId: 'zu-bob' })), 2);
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 2, peak: 3 });
    expect(await participantsOf(h, scheduleId)).toEqual([
      { name: 'Alice', role: 'student', present: false, key: expect.stringMatching(/^uuid:/) },
      { name: 'Assistant', role: 'staff', present: true, key: `puid:${HOSTS.t2.id}` },
      { name: 'Bob', role: 'student', present: true, key: 'puid:zu-bob' },
      { name: 'Guest', role: 'student', present: true, key: expect.stringMatching(/^uuid:/) },
      { name: 'Observer', role: 'staff', present: true, key: `puid:${HOSTS.o1.id}` },
      { name: 'Teacher', role: 'host', present: true, key: `puid:${HOSTS.t1.id}` },
    ]);

    // The host ends the meeting: everyone leaves, the class has ended.
    await h.clock.advance(1000);
    h.em.endMeeting(meetingId);
    await h.settle();
    const live = await liveOf(h, scheduleId);
    expect(live).toMatchObject({ status: 'ended', attendance: 0, peak: 3 });
    expect(new Date(live.endedAt ?? 0).getTime()).toBe(h.clock.now().getTime());
    expect((await participantsOf(h, scheduleId)).every((p) => !p.present)).toBe(true);
    const outcomes = (await eventRows(h)).map((r) => r.outcome);
    expect(outcomes.every((o) => o === 'applied')).toBe(true);
  });

  it('late and out-of-order deliveries (Zoom retries after a failure) converge', async () => {
    h = await open(dialect);
    const { scheduleId, meetingId } = await h.schedule('c1');
    const rows = await h.database.db.selectFrom('zoom_accounts').select('id').where('account_id', '=', SCHOOL).execute();
    const setSecret = async (secret: string) => {
      for (const r of rows) await updateZoomAccount(h.database.db, h.box, h.clock, r.id, { webhookSecretToken: secret });
    };
    const teacher = h.em.join(meetingId, { name: 'Teacher', role: 'host' });
    await h.settle();
    await h.clock.advance(1000);

    // Our side refuses for a moment (a wrong token): Zoom retries these joins 5 minutes later.
    await setSecret('whsec-mistake');
    const bob = h.em.join(meetingId, { name: 'Bob', userId: 'zu-bob' });
    const dave = h.em.join(meetingId, { name: 'Dave', email: 'dave@example.com' });
    await h.settle();
    expect(await countEvents(h)).toBe(2); // started + the teacher's join: a refused request stores nothing
    await setSecret(SCHOOL_SECRET);

    // Bob and Dave leave; their leaves arrive before their joins, which then change nothing.
    await h.clock.advance(1000);
    h.em.leave(meetingId, bob);
    h.em.leave(meetingId, dave);
    await h.settle();
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 0 });
    await h.clock.advance(5 * 60_000);
    await h.settle();
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'started', attendance: 0, peak: 0 });

    // Eve's join is refused, her leave is lost, and the meeting ends before her join is retried.
    await h.clock.advance(1000);
    await setSecret('whsec-mistake');
    const eve = h.em.join(meetingId, { name: 'Eve', userId: 'zu-eve' });
    await h.settle();
    await setSecret(SCHOOL_SECRET);
    await h.clock.advance(1000);
    h.em.webhooks.drop({ event: 'meeting.participant_left', meetingId, times: 1 });
    h.em.leave(meetingId, eve);
    h.em.leave(meetingId, teacher);
    await h.settle();
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'ended', attendance: 0 });
    await h.clock.advance(5 * 60_000);
    await h.settle();

    const retried = h.em.webhooks.deliveries({ event: 'meeting.participant_joined' }).filter((d) => d.attempt > 1);
    expect(retried.map((d) => d.status)).toEqual([200, 200, 200]);
    expect(await participantsOf(h, scheduleId)).toMatchObject([
      { name: 'Bob', present: false },
      { name: 'Dave', present: false },
      { name: 'Eve', present: false },
      { name: 'Teacher', role: 'host', present: false },
    ]);
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'ended', attendance: 0, peak: 0 });
    const joins = (await eventRows(h)).filter((r) => r.event === 'meeting.participant_joined').map((r) => r.outcome);
    expect(joins).toEqual(['applied', 'stale', 'stale', 'applied']); // Eve: recorded as having left at the end
  });

  it('string meeting ids (meeting events) and numeric ones (recording.completed) find the same class', async () => {
    h = await open(dialect, { onRecording: true });
    const { scheduleId, meetingId } = await h.schedule('c1');
    const carol = h.em.join(meetingId, { name: 'Carol', email: 'carol@example.com' });
    await h.settle(); // (advancing the clock with a delivery in flight would time it out: Zoom's 3 s)
    await h.clock.advance(60_000);
    h.em.leave(meetingId, carol);
    await h.settle();
    expect(await liveOf(h, scheduleId)).toMatchObject({ status: 'ended', attendance: 0, peak: 1 });

    // A participant event with a numeric id (as older payloads have) is applied to the same class.
    const uuid = h.em.meeting(meetingId)?.uuid ?? '';
    const numeric = envelope('meeting.participant_joined', { id: meetingId, uuid: 'instance-2', host_id: HOSTS.t1.id, participant: { user_id: 7, user_name: 'Numeric', participant_uuid: 'PN', join_time: h.clock.now().toISOString() } });
    expect((await post(SCHOOL, numeric, { secret: SCHOOL_SECRET })).status).toBe(200);
    h.em.addRecording(meetingId);
    await h.settle();
    expect(await liveOf(h, scheduleId)).toMatchObject({ attendance: 1 });
    expect(h.recordings).toHaveLength(1);
    expect(h.recordings[0]).toMatchObject({ accountId: SCHOOL, downloadToken: expect.any(String), object: { id: meetingId, uuid } });
    const rows = await eventRows(h);
    expect(rows.map((r) => [r.event, r.meeting_id, r.outcome])).toContainEqual(['recording.completed', String(meetingId), 'stored: 2 files']);
    expect(rows.every((r) => r.meeting_id === String(meetingId))).toBe(true);
  });

  it("recording.completed: the download_token reaches the recordings hook, but the stored event does not keep it", async () => {
    h = await open(dialect, { onRecording: true });
    const { meetingId } = await h.schedule('c1');
    h.em.addRecording(meetingId);
    await h.settle();
    expect(h.recordings).toEqual([expect.objectContaining({ downloadToken: expect.any(String) })]);
    const token = h.recordings[0]?.downloadToken ?? '';
    const row = await h.database.db.selectFrom('meeting_events').select(['payload', 'outcome']).where('event', '=', 'recording.completed').executeTakeFirstOrThrow();
    expect(row.outcome).toBe('stored: 2 files');
    const stored = fromJson(row.payload) as Record<string, unknown>;
    expect(stored).toMatchObject({ event: 'recording.completed', payload: { object: { id: meetingId } } });
    expect(stored).not.toHaveProperty('download_token');
    expect(JSON.stringify(stored)).not.toContain(token);
  });

  it('recordings without a handler, unknown events and meetings of no class are stored and ignored', async () => {
    h = await open(dialect);
    const { meetingId } = await h.schedule('c1');
    h.em.addRecording(meetingId);
    const other = envelope('meeting.participant_jbh_waiting', { id: String(meetingId), uuid: 'U-1', host_id: HOSTS.t1.id });
    expect(await post(SCHOOL, other, { secret: SCHOOL_SECRET })).toEqual({ status: 200, body: { stored: 1, duplicates: 0 } });
    const stranger = envelope('meeting.started', { id: '99999999999', uuid: 'U-x', host_id: 'someone' });
    expect((await post(SCHOOL, stranger, { secret: SCHOOL_SECRET })).status).toBe(200);
    await h.settle();
    const rows = await eventRows(h);
    expect(rows.map((r) => r.outcome)).toEqual(expect.arrayContaining(['ignored: recordings off', 'ignored: meeting.participant_jbh_waiting', 'ignored: no schedule for meeting 99999999999']));
    expect(rows.every((r) => r.processed_at !== null)).toBe(true);
  });
});
