import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, PRO, createMeeting, requestToken, start, until } from './helpers.ts';
import { type Receiver, SECRET, startReceiver, verify } from './receiver.ts';

let h: Harness;
let rx: Receiver;
afterEach(async () => {
  await h.em.close();
  await rx.close();
});

async function setup(events?: string[]): Promise<{ token: string; meetingId: number }> {
  h = await start({ webhookAnswerGraceMs: 200 });
  rx = await startReceiver();
  h.em.webhooks.subscribe({ accountId: PRO.accountId, url: rx.url, secretToken: SECRET, events });
  const token = await requestToken(h.em, PRO);
  const m = await createMeeting(h.em, token, 'host-a');
  return { token, meetingId: m.id };
}

describe('Zoom emulator: signed webhooks', () => {
  it("POSTs Zoom's envelope with a v0 HMAC signature over the raw body and a timestamp in seconds", async () => {
    const { meetingId } = await setup();
    await h.clock.advance(90_000);
    h.em.join(meetingId, { name: 'Host A', role: 'host' });
    await h.em.webhooks.settle();
    expect(rx.events()).toEqual(['meeting.started', 'meeting.participant_joined']);
    const [started, joined] = rx.received;
    if (!started || !joined) throw new Error('missing deliveries');
    for (const r of rx.received) {
      expect(verify(r)).toBe(true);
      expect(verify(r, 'another-secret')).toBe(false);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['user-agent']).toBe('Zoom Marketplace/1.0a');
      expect(r.headers['x-zm-request-timestamp']).toBe(String(Date.parse('2026-03-02T08:01:30Z') / 1000));
      expect(r.json.event_ts).toBe(Date.parse('2026-03-02T08:01:30Z'));
    }
    expect(started.json.payload).toEqual({
      account_id: PRO.accountId,
      object: {
        id: String(meetingId),
        uuid: h.em.meeting(meetingId)?.uuid,
        host_id: 'host-a',
        topic: 'Class [booking:1]',
        type: 2,
        start_time: '2026-03-02T08:01:30Z',
        duration: 60,
        timezone: 'UTC',
      },
    });
    expect(joined.json.payload.object).toMatchObject({
      id: String(meetingId),
      participant: { user_name: 'Host A', id: 'host-a', email: 'host-a@example.com', join_time: '2026-03-02T08:01:30Z', participant_uuid: h.em.participants(meetingId)[0]?.uuid },
    });
    expect(h.em.webhooks.deliveries().map((d) => [d.event, d.attempt, d.status, d.accountId])).toEqual([
      ['meeting.started', 1, 200, PRO.accountId],
      ['meeting.participant_joined', 1, 200, PRO.accountId],
    ]);
    expect(h.em.webhooks.deliveries()[0]?.body).toBe(started.body);
  });

  it('validates the endpoint: plainToken echoed and encryptedToken = hex HMAC of it', async () => {
    await setup();
    expect(await h.em.webhooks.validate(PRO.accountId)).toMatchObject({ ok: true, status: 200 });
    const sent = rx.received[0];
    expect(sent?.json).toMatchObject({ event: 'endpoint.url_validation', payload: { plainToken: expect.any(String) } });
    if (sent) expect(verify(sent)).toBe(true);
    rx.answer = (r) => ({ status: 200, body: { plainToken: r.json.payload.plainToken, encryptedToken: 'nope' } });
    expect(await h.em.webhooks.validate(PRO.accountId)).toMatchObject({ ok: false, status: 200, detail: expect.stringContaining('encryptedToken') });
    rx.answer = () => 404;
    expect(await h.em.webhooks.validate(PRO.accountId)).toMatchObject({ ok: false, status: 404 });
    expect(await h.em.webhooks.validate('acct-free')).toMatchObject({ ok: false, status: null });
    expect(h.em.webhooks.deliveries({ event: 'endpoint.url_validation' })).toHaveLength(3);
  });

  it('retries a failed delivery at +5, +20 and +60 minutes, then gives up', async () => {
    const { meetingId } = await setup(['meeting.started']);
    rx.answer = () => 500;
    h.em.startMeeting(meetingId);
    await h.em.webhooks.settle();
    const attempts = (): Array<[number, string, number | null]> => h.em.webhooks.deliveries().map((d) => [d.attempt, d.at, d.status]);
    expect(attempts()).toEqual([[1, '2026-03-02T08:00:00.000Z', 500]]);
    await h.clock.advance(5 * 60_000 - 1);
    expect(attempts()).toHaveLength(1);
    await h.clock.advance(1);
    await h.em.webhooks.settle();
    await h.clock.advance(20 * 60_000);
    await h.em.webhooks.settle();
    await h.clock.advance(60 * 60_000);
    await h.em.webhooks.settle();
    await h.clock.advance(24 * 3_600_000);
    await h.em.webhooks.settle();
    expect(attempts()).toEqual([
      [1, '2026-03-02T08:00:00.000Z', 500],
      [2, '2026-03-02T08:05:00.000Z', 500],
      [3, '2026-03-02T08:25:00.000Z', 500],
      [4, '2026-03-02T09:25:00.000Z', 500],
    ]);
    // Every attempt carries the same body with its own timestamp and a valid signature.
    expect(new Set(rx.received.map((r) => r.body)).size).toBe(1);
    expect(rx.received.map((r) => r.headers['x-zm-request-timestamp'])).toEqual(['08:00:00', '08:05:00', '08:25:00', '09:25:00'].map((t) => String(Date.parse(`2026-03-02T${t}Z`) / 1000)));
    expect(rx.received.every((r) => verify(r))).toBe(true);
  });

  it('treats no answer within 3 s (emulator clock) as a failure and stops retrying after a success', async () => {
    const { meetingId } = await setup(['meeting.started']);
    rx.answer = () => 'hang';
    h.em.startMeeting(meetingId);
    await until(() => rx.received.length === 1);
    expect(h.em.webhooks.deliveries()[0]?.status).toBeNull();
    await h.clock.advance(3000);
    await h.em.webhooks.settle();
    rx.answer = () => 204;
    await h.clock.advance(5 * 60_000);
    await h.em.webhooks.settle();
    await h.clock.advance(2 * 3_600_000);
    await h.em.webhooks.settle();
    expect(h.em.webhooks.deliveries().map((d) => [d.attempt, d.status])).toEqual([
      [1, null],
      [2, 204],
    ]);
  });

  it('does not make the API call that caused an event wait for its delivery', async () => {
    const { token, meetingId } = await setup();
    rx.answer = () => 'hang';
    h.em.startMeeting(meetingId);
    await until(() => rx.received.length === 1);
    const res = await fetch(`${h.em.apiBaseUrl}/meetings/${meetingId}/status`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ action: 'end' }),
    });
    expect(res.status).toBe(204);
    expect(h.em.meeting(meetingId)?.state).toBe('ended');
    // FIFO per subscription: meeting.ended waits behind the unanswered meeting.started.
    expect(rx.events()).toEqual(['meeting.started']);
    rx.answer = () => 200;
    await h.clock.advance(3000);
    await h.em.webhooks.settle();
    expect(rx.events()).toEqual(['meeting.started', 'meeting.ended']);
  });

  it('drops the next matching events (no delivery, no retry) and only those', async () => {
    const { token, meetingId } = await setup(['meeting.started', 'meeting.ended']);
    const other = await createMeeting(h.em, token, 'host-b');
    const rule = h.em.webhooks.drop({ event: 'meeting.started', meetingId });
    h.em.startMeeting(other.id);
    h.em.startMeeting(meetingId);
    h.em.endMeeting(meetingId);
    h.em.startMeeting(meetingId);
    await h.em.webhooks.settle();
    await h.clock.advance(2 * 3_600_000);
    expect(rx.received.map((r) => [r.json.event, r.json.payload.object])).toEqual([
      ['meeting.started', expect.objectContaining({ id: String(other.id) })],
      ['meeting.ended', expect.objectContaining({ id: String(meetingId) })],
      ['meeting.started', expect.objectContaining({ id: String(meetingId) })],
    ]);
    rule.remove();
    h.em.webhooks.drop({ times: 2 });
    h.em.endMeeting(meetingId);
    h.em.endMeeting(other.id);
    h.em.startMeeting(other.id);
    await h.em.webhooks.settle();
    expect(rx.events()).toHaveLength(4);
  });

  it('redelivers an event byte for byte with a fresh timestamp and signature', async () => {
    const { meetingId } = await setup(['meeting.started']);
    h.em.startMeeting(meetingId);
    await h.em.webhooks.settle();
    const first = h.em.webhooks.deliveries()[0];
    if (!first) throw new Error('no delivery');
    await h.clock.advance(42_000);
    expect(await h.em.webhooks.redeliver(first.id)).toBe(200);
    const [a, b] = rx.received;
    expect(b?.body).toBe(a?.body);
    expect(Number(b?.headers['x-zm-request-timestamp']) - Number(a?.headers['x-zm-request-timestamp'])).toBe(42);
    expect(b && verify(b)).toBe(true);
    expect(b?.headers['x-zm-signature']).not.toBe(a?.headers['x-zm-signature']);
    expect(h.em.webhooks.deliveries()).toHaveLength(2);
    await expect(h.em.webhooks.redeliver('wh_nope')).rejects.toThrow(/no webhook delivery/);
  });

  it('sends recording.completed with a numeric meeting id and a top-level download_token', async () => {
    const { meetingId } = await setup(['recording.completed']);
    h.em.join(meetingId, { name: 'Ann' });
    await h.clock.advance(30 * 60_000);
    h.em.endMeeting(meetingId);
    expect(h.em.addRecording(meetingId)).toBe(true);
    await h.em.webhooks.settle();
    const [r] = rx.received;
    expect(r?.json.download_token).toEqual(expect.any(String));
    expect(r?.json.payload).toMatchObject({
      account_id: PRO.accountId,
      object: {
        id: meetingId,
        host_id: 'host-a',
        account_id: PRO.accountId,
        duration: 30,
        recording_count: 2,
        total_size: 307_200 + 102_400,
        recording_files: [
          { file_type: 'MP4', file_size: 307_200, status: 'completed', download_url: expect.stringMatching(/\/rec\/download\//) },
          { file_type: 'M4A', file_size: 102_400, recording_type: 'audio_only' },
        ],
      },
    });
  });

  it('stops delivering to an unsubscribed URL and keeps subscriptions across reset()', async () => {
    const { meetingId } = await setup(['meeting.started', 'meeting.ended']);
    h.em.reset();
    const token = await requestToken(h.em, PRO);
    const m = await createMeeting(h.em, token, 'host-a');
    h.em.startMeeting(m.id);
    await h.em.webhooks.settle();
    expect(rx.events()).toEqual(['meeting.started']);
    expect(meetingId).not.toBe(m.id);
  });
});
