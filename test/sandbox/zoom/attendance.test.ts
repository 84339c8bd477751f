import { afterEach, describe, expect, it } from 'vitest';
import { BIZ, FREE, type Harness, PRO, call, createMeeting, requestToken, start } from './helpers.ts';
import { type Receiver, SECRET, startReceiver } from './receiver.ts';

let h: Harness;
let rx: Receiver;
afterEach(async () => {
  await h.em.close();
  await rx.close();
});

async function setup(account = PRO, host = 'host-a'): Promise<{ token: string; meetingId: number }> {
  h = await start();
  rx = await startReceiver();
  h.em.webhooks.subscribe({ accountId: account.accountId, url: rx.url, secretToken: SECRET });
  const token = await requestToken(h.em, account);
  const m = await createMeeting(h.em, token, host);
  return { token, meetingId: m.id };
}

type Participant = { user_name: string; id: string; leave_reason?: string; leave_time?: string; join_time?: string };
const participant = (i: number): Participant => (rx.received[i]?.json.payload.object as { participant: Participant }).participant;

describe('Zoom emulator: participants', () => {
  it('a join starts a waiting meeting (JBH), the last leave ends it, and each step sends its webhook in order', async () => {
    const { token, meetingId } = await setup();
    const ann = h.em.join(meetingId, { name: 'Ann', email: 'ann@example.com' });
    expect(h.em.meeting(meetingId)?.state).toBe('started');
    await h.clock.advance(60_000);
    const host = h.em.join(meetingId, { name: 'Host A', role: 'host' });
    expect(h.em.participants(meetingId)).toEqual([
      { uuid: ann, name: 'Ann', email: 'ann@example.com', userId: '', joinedAt: '2026-03-02T08:00:00.000Z', role: 'participant' },
      { uuid: host, name: 'Host A', email: 'host-a@example.com', userId: 'host-a', joinedAt: '2026-03-02T08:01:00.000Z', role: 'host' },
    ]);
    expect(await call(h.em, token, 'GET', `/meetings/${meetingId}`)).toMatchObject({ body: { status: 'started' } });
    expect(h.em.leave(meetingId, ann)).toBe(true);
    expect(h.em.leave(meetingId, ann)).toBe(false);
    expect(h.em.meeting(meetingId)?.state).toBe('started');
    await h.clock.advance(60_000);
    expect(h.em.leave(meetingId, host)).toBe(true);
    expect(h.em.meeting(meetingId)?.state).toBe('ended');
    expect(h.em.participants(meetingId)).toEqual([]);
    expect(await call(h.em, token, 'GET', `/meetings/${meetingId}`)).toMatchObject({ body: { status: 'waiting' } });
    await h.em.webhooks.settle();
    expect(rx.events()).toEqual([
      'meeting.started',
      'meeting.participant_joined',
      'meeting.participant_joined',
      'meeting.participant_left',
      'meeting.participant_left',
      'meeting.ended',
    ]);
    expect(participant(1)).toMatchObject({ user_name: 'Ann', id: '', join_time: '2026-03-02T08:00:00Z' });
    expect(participant(2)).toMatchObject({ user_name: 'Host A', id: 'host-a' });
    expect(participant(4)).toMatchObject({ user_name: 'Host A', leave_time: '2026-03-02T08:02:00Z', leave_reason: 'Host A left the meeting. Reason : left the meeting.' });
    expect(rx.received[5]?.json.payload.object).toMatchObject({ id: String(meetingId), end_time: '2026-03-02T08:02:00Z' });
  });

  it('PUT status end makes everyone leave (with a reason), then ends the meeting; a late join restarts it', async () => {
    const { token, meetingId } = await setup();
    h.em.join(meetingId, { name: 'Ann' });
    h.em.join(meetingId, { name: 'Bob' });
    const firstUuid = h.em.meeting(meetingId)?.uuid;
    expect(await call(h.em, token, 'PUT', `/meetings/${meetingId}/status`, { action: 'end' })).toMatchObject({ status: 204 });
    expect(h.em.participants(meetingId)).toEqual([]);
    await h.em.webhooks.settle();
    expect(rx.events().slice(-3)).toEqual(['meeting.participant_left', 'meeting.participant_left', 'meeting.ended']);
    expect(participant(3).leave_reason).toBe('Ann left the meeting. Reason : Host ended the meeting.');
    h.em.join(meetingId, { name: 'Late' });
    expect(h.em.meeting(meetingId)).toMatchObject({ state: 'started' });
    expect(h.em.meeting(meetingId)?.uuid).not.toBe(firstUuid);
  });

  it('runs a script on the clock, relative to the scheduled start', async () => {
    const { meetingId } = await setup(); // scheduled 10:00, now 08:00
    h.em.script(meetingId, [
      { atMinute: 45, leave: 'Host A' },
      { atMinute: -5, join: { name: 'Ann' } },
      { atMinute: 0, join: { name: 'Host A', role: 'host' } },
      { atMinute: 30, leave: 'Ann' },
      { atMinute: 50, leave: 'Nobody' },
    ]);
    const state = (): string | undefined => h.em.meeting(meetingId)?.state;
    await h.clock.set(new Date('2026-03-02T09:54:59Z'));
    expect(state()).toBe('waiting');
    await h.clock.set(new Date('2026-03-02T09:55:00Z'));
    expect(state()).toBe('started');
    expect(h.em.participants(meetingId).map((p) => p.name)).toEqual(['Ann']);
    await h.clock.set(new Date('2026-03-02T10:30:00Z'));
    expect(h.em.participants(meetingId).map((p) => p.name)).toEqual(['Host A']);
    await h.clock.set(new Date('2026-03-02T10:45:00Z'));
    expect(state()).toBe('ended');
    expect(h.em.meeting(meetingId)?.instances).toEqual([expect.objectContaining({ startedAt: '2026-03-02T09:55:00.000Z', endedAt: '2026-03-02T10:45:00.000Z' })]);
    await h.clock.advance(3_600_000);
    await h.em.webhooks.settle();
    expect(rx.events().filter((e) => e === 'meeting.participant_left')).toHaveLength(2);
  });

  it('refuses DELETE of a live meeting (3002), deletes it once ended, and then nobody can join', async () => {
    const { token, meetingId } = await setup();
    h.em.join(meetingId, { name: 'Ann' });
    expect(await call(h.em, token, 'DELETE', `/meetings/${meetingId}`)).toMatchObject({ status: 400, body: { code: 3002 } });
    expect(await call(h.em, token, 'PUT', `/meetings/${meetingId}/status`, { action: 'end' })).toMatchObject({ status: 204 });
    expect(await call(h.em, token, 'DELETE', `/meetings/${meetingId}`)).toMatchObject({ status: 204 });
    expect(() => h.em.join(meetingId, { name: 'Late' })).toThrow(/does not exist/);
    expect(h.em.meeting(meetingId)?.state).toBe('ended');
  });

  it('keeps the start rules: a busy host blocks a second JBH meeting, and Basic meetings end at 40 minutes', async () => {
    const { token, meetingId } = await setup();
    const second = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T10:30:00Z' });
    h.em.join(meetingId, { name: 'Ann' });
    expect(() => h.em.join(second.id, { name: 'Bob' })).toThrow(/host-busy/);
    expect(h.em.violations()).toEqual([expect.objectContaining({ kind: 'host-busy', meetingId: second.id })]);

    const freeToken = await requestToken(h.em, FREE);
    h.em.webhooks.subscribe({ accountId: FREE.accountId, url: rx.url, secretToken: SECRET, events: ['meeting.participant_left', 'meeting.ended'] });
    const basic = await createMeeting(h.em, freeToken, 'basic-1', { duration: 40 });
    h.em.join(basic.id, { name: 'Cat' });
    await h.clock.advance(40 * 60_000);
    expect(h.em.meeting(basic.id)?.state).toBe('ended');
    await h.em.webhooks.settle();
    const left = rx.received.filter((r) => r.json.payload.account_id === FREE.accountId);
    expect(left.map((r) => r.json.event)).toEqual(['meeting.participant_left', 'meeting.ended']);
    expect((left[0]?.json.payload.object as { participant: Participant }).participant.leave_reason).toBe('Cat left the meeting. Reason : The meeting reached its time limit.');
  });

  it('reports live participants through metrics on Business only (Heavy), else 400 code 200', async () => {
    const { token: proToken, meetingId: proMeeting } = await setup();
    expect(await call(h.em, proToken, 'GET', `/metrics/meetings/${proMeeting}/participants?type=live`)).toMatchObject({
      status: 400,
      body: { code: 200, message: 'No permission.' },
    });
    const token = await requestToken(h.em, BIZ);
    const m = await createMeeting(h.em, token, 'biz-1');
    const path = `/metrics/meetings/${m.id}/participants?type=live`;
    expect(await call(h.em, token, 'GET', path)).toMatchObject({ status: 200, body: { participants: [] } });
    h.em.join(m.id, { name: 'Ann', email: 'ann@example.com' });
    h.em.join(m.id, { name: 'Biz Host', role: 'host' });
    const res = await call(h.em, token, 'GET', path);
    expect(res.headers.get('x-ratelimit-category')).toBe('Heavy');
    expect(res.body).toMatchObject({
      next_page_token: '',
      participants: [
        { id: '', user_name: 'Ann', email: 'ann@example.com', join_time: '2026-03-02T08:00:00Z', status: 'in_meeting' },
        { id: 'biz-1', user_name: 'Biz Host', status: 'in_meeting' },
      ],
    });
    expect(await call(h.em, token, 'GET', '/metrics/meetings/12345678901/participants?type=live')).toMatchObject({ status: 404, body: { code: 3001 } });
  });

  it('lets another process drive attendance and subscriptions through /_emulator', async () => {
    const { meetingId } = await setup();
    const post = async (path: string, body: unknown): Promise<{ status: number; body: unknown }> => {
      const res = await fetch(`${h.em.url}/_emulator${path}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    };
    const rx2 = await startReceiver('other-secret');
    try {
      const sub = await post('/webhooks/subscriptions', { accountId: PRO.accountId, url: rx2.url, secretToken: 'other-secret', events: ['meeting.participant_joined'] });
      expect(sub).toMatchObject({ status: 201, body: { id: 1 } });
      expect(await post('/webhooks/validate', { accountId: PRO.accountId })).toMatchObject({ status: 200, body: { ok: true } }); // both receivers answer for their own secret
      const joined = await post(`/meetings/${meetingId}/join`, { name: 'Ann' });
      const uuid = (joined.body as { uuid: string }).uuid;
      const list = await (await fetch(`${h.em.url}/_emulator/meetings/${meetingId}/participants`)).json();
      expect(list).toEqual([expect.objectContaining({ uuid, name: 'Ann' })]);
      expect(await post(`/meetings/${meetingId}/leave`, { uuid })).toEqual({ status: 200, body: { left: true } });
      expect(await post('/meetings/999/join', { name: 'X' })).toMatchObject({ status: 400 });
      await fetch(`${h.em.url}/_emulator/webhooks/subscriptions/1`, { method: 'DELETE' });
      await post(`/meetings/${meetingId}/join`, { name: 'Bob' });
      await h.em.webhooks.settle();
      expect(rx2.received.filter((r) => r.json.event === 'meeting.participant_joined')).toHaveLength(1);
      const deliveries = (await (await fetch(`${h.em.url}/_emulator/webhooks/deliveries`)).json()) as unknown[];
      expect(deliveries.length).toBeGreaterThan(4);
    } finally {
      await rx2.close();
    }
  });
});
