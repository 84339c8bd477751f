import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { webhookSignature } from '../../src/sandbox/zoom/index.ts';
import { checkZoomSignature, eventKey, parseZoomEnvelope, parseZoomWebhook, participantKey, signZoomBody, stableJson, urlValidationAnswer, type ZoomWebhookEvent } from '../../src/zoom/webhook.ts';

const NOW = new Date('2026-12-01T00:00:00Z');
const TS = String(NOW.getTime() / 1000);
const FIVE_MIN = 5 * 60_000;

describe('Zoom webhook signature', () => {
  const body = Buffer.from('{"event":"meeting.started","event_ts":1}');
  const check = (over: Partial<Parameters<typeof checkZoomSignature>[0]>) =>
    checkZoomSignature({ rawBody: body, timestamp: TS, signature: signZoomBody('s3cret', TS, body), secretTokens: ['s3cret'], now: NOW, toleranceMs: FIVE_MIN, ...over });

  it('is v0= hex HMAC-SHA256 over v0:{ts}:{body}, as the emulator (and Zoom) sign', () => {
    const expected = `v0=${createHmac('sha256', 's3cret').update(`v0:${TS}:${body.toString()}`).digest('hex')}`;
    expect(signZoomBody('s3cret', TS, body)).toBe(expected);
    expect(signZoomBody('s3cret', Number(TS), body.toString())).toBe(webhookSignature('s3cret', Number(TS), body.toString()));
  });

  it('accepts a fresh, correctly signed body and names the token that matched', () => {
    expect(check({})).toEqual({ ok: true, secretToken: 's3cret' });
    // Rotation: any of the account's tokens.
    expect(check({ secretTokens: ['old', 's3cret'] })).toEqual({ ok: true, secretToken: 's3cret' });
  });

  it.each([
    ['no signature', { signature: undefined }, 'missing'],
    ['empty signature', { signature: '' }, 'missing'],
    ['no v0= prefix', { signature: signZoomBody('s3cret', TS, body).slice(3) }, 'missing'],
    ['several signature headers', { signature: [signZoomBody('s3cret', TS, body)] }, 'missing'],
    ['no timestamp', { timestamp: undefined }, 'missing'],
    ['timestamp in milliseconds-looking garbage', { timestamp: 'abc' }, 'missing'],
    ['timestamp not a number', { timestamp: '12e5' }, 'missing'],
    ['wrong secret', { secretTokens: ['other'] }, 'mismatch'],
    ['no secret at all', { secretTokens: [] }, 'mismatch'],
    ['body altered', { rawBody: Buffer.from('{"event":"meeting.ended","event_ts":1}') }, 'mismatch'],
    ['signature of another timestamp', { timestamp: String(Number(TS) + 1) }, 'mismatch'],
    ['upper-case hex', { signature: `v0=${signZoomBody('s3cret', TS, body).slice(3).toUpperCase()}` }, 'mismatch'],
    ['truncated signature', { signature: signZoomBody('s3cret', TS, body).slice(0, 40) }, 'mismatch'],
  ] as Array<[string, Partial<Parameters<typeof checkZoomSignature>[0]>, string]>)('rejects %s', (_name, over, reason) => {
    expect(check(over)).toEqual({ ok: false, reason });
  });

  it('rejects timestamps outside the tolerance either way (replays), accepts the edges', () => {
    const at = (offsetMs: number) => {
      const ts = String(Math.floor((NOW.getTime() + offsetMs) / 1000));
      return check({ timestamp: ts, signature: signZoomBody('s3cret', ts, body) });
    };
    expect(at(-FIVE_MIN).ok).toBe(true);
    expect(at(FIVE_MIN).ok).toBe(true);
    expect(at(-FIVE_MIN - 1000)).toEqual({ ok: false, reason: 'stale' });
    expect(at(FIVE_MIN + 1000)).toEqual({ ok: false, reason: 'stale' });
    expect(at(-24 * 3_600_000)).toEqual({ ok: false, reason: 'stale' });
  });
});

describe('URL validation answer', () => {
  it("is Zoom's documented answer: plainToken echoed, encryptedToken = hex HMAC-SHA256(secret, plainToken)", () => {
    expect(urlValidationAnswer('secret-token', 'qgg8vlvZRS6UYooatFL8Aw')).toEqual({
      plainToken: 'qgg8vlvZRS6UYooatFL8Aw',
      encryptedToken: createHmac('sha256', 'secret-token').update('qgg8vlvZRS6UYooatFL8Aw').digest('hex'),
    });
  });
});

const meeting = (over: Record<string, unknown> = {}) => ({ id: '81234567890', uuid: 'aBc/123==', host_id: 'user-t1', topic: 'A1', type: 2, start_time: '2026-12-01T01:00:00Z', ...over });
const envelope = (event: string, object: unknown, extra: Record<string, unknown> = {}) => ({ event, event_ts: 1_796_000_000_123, payload: { account_id: 'acc-1', object }, ...extra });
const person = (over: Record<string, unknown> = {}) => ({ user_id: '16778240', user_name: 'Alice', id: '', participant_uuid: 'P-1', email: 'alice@example.com', join_time: '2026-12-01T01:00:05Z', ...over });

function ok(json: unknown): ZoomWebhookEvent {
  const parsed = parseZoomEnvelope(json);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.event;
}

describe('Zoom webhook parsing', () => {
  it('meeting.started / ended: string or numeric ids, normalised to strings', () => {
    expect(ok(envelope('meeting.started', meeting()))).toEqual({ event: 'meeting.started', at: new Date(1_796_000_000_123), accountId: 'acc-1', meeting: { meetingId: '81234567890', meetingUuid: 'aBc/123==', hostId: 'user-t1' } });
    expect(ok(envelope('meeting.ended', meeting({ id: 81234567890, end_time: '2026-12-01T01:50:00Z' })))).toMatchObject({ event: 'meeting.ended', meeting: { meetingId: '81234567890' } });
  });

  it('participant events: the participant with its most stable key; guests have id ""', () => {
    const joined = ok(envelope('meeting.participant_joined', { ...meeting(), participant: person() }));
    expect(joined).toMatchObject({ event: 'meeting.participant_joined', participant: { key: 'uuid:P-1', name: 'Alice', email: 'alice@example.com', userIds: [], joinTime: '2026-12-01T01:00:05Z', leaveTime: null } });
    const left = ok(envelope('meeting.participant_left', { ...meeting({ id: 81234567890 }), participant: person({ id: 'zu-9', participant_user_id: 'zu-9', leave_time: '2026-12-01T01:40:00Z', leave_reason: 'left', join_time: undefined }) }));
    expect(left).toMatchObject({ event: 'meeting.participant_left', meeting: { meetingId: '81234567890' }, participant: { key: 'puid:zu-9', userIds: ['zu-9', 'zu-9'], leaveTime: '2026-12-01T01:40:00Z', leaveReason: 'left' } });
  });

  it('recording.completed keeps the object and the download token', () => {
    const object = { ...meeting({ id: 81234567890 }), account_id: 'acc-1', recording_files: [{ id: 'f1' }] };
    expect(ok(envelope('recording.completed', object, { download_token: 'dl-tok' }))).toMatchObject({ event: 'recording.completed', meeting: { meetingId: '81234567890' }, object, downloadToken: 'dl-tok' });
    expect(ok(envelope('recording.completed', object))).toMatchObject({ downloadToken: null });
  });

  it('url validation and unknown events', () => {
    expect(ok({ event: 'endpoint.url_validation', event_ts: 5, payload: { plainToken: 'abc' } })).toEqual({ event: 'endpoint.url_validation', at: new Date(5), accountId: null, plainToken: 'abc' });
    expect(ok(envelope('meeting.participant_jbh_waiting', meeting()))).toMatchObject({ event: 'other', name: 'meeting.participant_jbh_waiting', meeting: { meetingId: '81234567890' } });
    expect(ok(envelope('user.updated', { id: 'u' }))).toMatchObject({ event: 'other', name: 'user.updated', meeting: null });
  });

  it.each([
    ['not JSON', '{"event":', 'the body is not valid JSON'],
    ['not an object', '[1,2]', 'body:'],
    ['no event', JSON.stringify({ event_ts: 1, payload: {} }), 'event:'],
    ['no event_ts', JSON.stringify({ event: 'meeting.started', payload: {} }), 'event_ts:'],
    ['event_ts a string', JSON.stringify({ event: 'meeting.started', event_ts: '1', payload: {} }), 'event_ts:'],
    ['no payload', JSON.stringify({ event: 'meeting.started', event_ts: 1 }), 'payload:'],
    ['meeting without object', JSON.stringify(envelope('meeting.started', undefined)), 'payload.object:'],
    ['meeting without uuid', JSON.stringify(envelope('meeting.ended', meeting({ uuid: undefined }))), 'payload.object.uuid:'],
    ['meeting with an empty id', JSON.stringify(envelope('meeting.ended', meeting({ id: '' }))), 'payload.object.id:'],
    ['meeting with a negative id', JSON.stringify(envelope('meeting.ended', meeting({ id: -1 }))), 'payload.object.id:'],
    ['participant event without participant', JSON.stringify(envelope('meeting.participant_joined', meeting())), 'payload.object.participant:'],
    ['participant nobody can identify', JSON.stringify(envelope('meeting.participant_left', { ...meeting(), participant: { id: '', user_name: '' } })), 'payload.object.participant: no id'],
    ['validation without plainToken', JSON.stringify({ event: 'endpoint.url_validation', event_ts: 1, payload: {} }), 'payload.plainToken:'],
  ])('rejects %s, naming the problem', (_name, raw, problem) => {
    const parsed = parseZoomWebhook(Buffer.from(raw));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toContain(problem);
  });

  it('participant key: participant_user_id, participant_uuid, id, user_id, email, then name', () => {
    const all = { participant_user_id: 'pu', participant_uuid: 'uu', id: 'zid', user_id: '1677', email: 'A@X.com', user_name: 'Al' };
    expect(participantKey(all)).toBe('puid:pu');
    expect(participantKey({ ...all, participant_user_id: null })).toBe('uuid:uu');
    expect(participantKey({ ...all, participant_user_id: null, participant_uuid: null })).toBe('id:zid');
    expect(participantKey({ ...all, participant_user_id: null, participant_uuid: null, id: null })).toBe('uid:1677');
    expect(participantKey({ participant_user_id: null, participant_uuid: null, id: null, user_id: null, email: 'A@X.com', user_name: 'Al' })).toBe('email:a@x.com');
    expect(participantKey({ participant_user_id: null, participant_uuid: null, id: null, user_id: null, email: null, user_name: 'Al' })).toBe('name:Al');
    expect(participantKey({ participant_user_id: null, participant_uuid: null, id: null, user_id: null, email: null, user_name: null })).toBeNull();
    // Numeric user ids (older payloads) are read as text too.
    expect(ok(envelope('meeting.participant_joined', { ...meeting(), participant: { user_id: 16778240, user_name: 'G' } }))).toMatchObject({ participant: { key: 'uid:16778240' } });
  });
});

describe('event keys', () => {
  const key = (json: unknown, account = 'acc-1') => {
    const parsed = parseZoomEnvelope(json);
    if (!parsed.ok) throw new Error(parsed.problem);
    return eventKey(account, parsed);
  };
  const joined = (over: Record<string, unknown> = {}, env: Record<string, unknown> = {}) => ({ ...envelope('meeting.participant_joined', { ...meeting(), participant: person(over) }), ...env });

  it("a retry (same body, any key order, string or number id) has the same key", () => {
    const a = joined();
    const reordered = JSON.parse(JSON.stringify({ payload: a.payload, event_ts: a.event_ts, event: a.event })) as unknown;
    expect(key(reordered)).toBe(key(a));
    expect(key(envelope('meeting.started', meeting({ id: 81234567890 })))).toBe(key(envelope('meeting.started', meeting())));
  });

  it('distinct events have distinct keys', () => {
    const keys = [
      key(joined()),
      key(joined({ participant_uuid: 'P-2', user_name: 'Bob' })), // another person, same millisecond
      key(joined({}, { event_ts: 1_796_000_100_000 })), // the same person again later
      key(joined({}, { event: 'meeting.participant_left' })),
      key(joined(), 'acc-2'),
      key(envelope('meeting.started', meeting())),
      key(envelope('meeting.ended', meeting())),
      key(envelope('meeting.started', meeting({ uuid: 'another-instance' }))),
      key(envelope('recording.completed', meeting())),
      key(envelope('meeting.participant_jbh_waiting', meeting())),
      key(envelope('meeting.participant_jbh_waiting', meeting({ uuid: 'x' }))),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('unknown events are keyed by their payload, whatever its key order', () => {
    const a = envelope('user.updated', { id: 'u', a: 1, b: [1, { c: 2, d: 3 }] });
    const b = envelope('user.updated', { b: [1, { d: 3, c: 2 }], a: 1, id: 'u' });
    expect(key(a)).toBe(key(b));
    expect(key(a)).not.toBe(key(envelope('user.updated', { id: 'u', a: 2 })));
    expect(stableJson({ b: 1, a: [null, 'x'] })).toBe('{"a":[null,"x"],"b":1}');
  });

  it('stays bounded for absurdly long fields', () => {
    const k = key(joined({ participant_uuid: 'x'.repeat(5000) }));
    expect(k.length).toBeLessThan(300);
    expect(k).not.toBe(key(joined({ participant_uuid: `${'x'.repeat(4999)}y` })));
  });
});
