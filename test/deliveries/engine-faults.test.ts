import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { firstPushAttempt } from '../../src/deliveries/line-sender.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { dialects } from '../support/databases.ts';
import { pauseAfter } from '../support/pause.ts';
import { openEngineWorld, userId, type EngineWorld } from './world.ts';

/**
 * Faults around a claim: a worker that stalls past its lease, a read that fails at start, a channel
 * LINE refuses, a page that fails while another is in flight at shutdown.
 */

describe.each(dialects)('delivery engine faults on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  it('a worker whose lease ran out before it stored its multicast chunk stores and sends nothing: each student gets the link once', async () => {
    w = await openEngineWorld(dialect, { notifications: { lease: '6s' } });
    const students = Array.from({ length: 30 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    // Worker A stalls (a GC pause, a partition) right after its claim, while reading the bookings.
    const stall = pauseAfter((node) => node.kind === 'SelectQueryNode' && JSON.stringify(node).includes('"meeting_version"'));
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const running = w.engine('worker-a', w.h.database.db.withPlugin(stall.plugin)).runOnce();
    await stall.atGate;
    // A's lease runs out meanwhile; B takes the deliveries over (a second attempt, no chunk stored):
    // each goes by push under its own key.
    await w.h.database.db.updateTable('deliveries').set({ lease_expires_at: new Date('2026-12-01T11:49:00Z') }).execute();
    expect(await w.engine('worker-b').runOnce()).toMatchObject({ claimed: 30, byState: { sent: 30 } });
    // A wakes up and goes on with the page it planned as one multicast.
    stall.open();
    await running;
    await w.h.clock.advance(1000);
    const recipients = w.received().flatMap((r) => r.to.split(','));
    expect(recipients).toHaveLength(30);
    expect(new Set(recipients)).toEqual(new Set(students.map(userId)));
    expect(w.h.emulator.requests().filter((r) => r.endpoint === 'multicast')).toEqual([]);
    // Nothing stored for deliveries A no longer held: no later retry could resolve to such a chunk.
    expect(await w.h.database.db.selectFrom('line_multicasts').select('id').execute()).toEqual([]);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).distinct().execute()).toEqual([{ state: 'sent', attempts: 2 }]);
  });

  it('timing wheel: one failed read while loading the wheel at start does not stop the engine', async () => {
    w = await openEngineWorld(dialect, { notifications: { strategy: 'timing-wheel' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // The wheel's first load fails once (a dropped connection).
    let fail = true;
    const flaky: KyselyPlugin = {
      transformQuery({ node }) {
        if (fail && node.kind === 'SelectQueryNode' && JSON.stringify(node).includes('"available_at"')) {
          fail = false;
          throw new Error('connection reset (injected)');
        }
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    };
    const engine = w.engine(undefined, w.h.database.db.withPlugin(flaky));
    await engine.start();
    expect(fail).toBe(false);
    expect(w.h.logs.some((l) => l.includes('connection reset (injected)'))).toBe(true);
    expect(engine.wheelSize()).toBe(1);
    await w.at('2026-12-01T11:50:01Z');
    expect(w.received().map((r) => [r.to, r.at])).toEqual([[userId(1), '2026-12-01T11:50:00.000Z']]);
  });

  it.each([
    ['a refused token (401)', { status: 401, body: { message: 'Authentication failed due to the following reason: invalid token' } }],
    ['the monthly quota (429)', { status: 429, body: { message: 'You have reached your monthly limit.' } }],
  ])('a new multicast chunk LINE refused for %s is dropped: a student sent by push later and retried is never resent it', async (_name, fault) => {
    w = await openEngineWorld(dialect, { line: { quotaRecheck: '2s' } });
    const students = Array.from({ length: 30 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/multicast', fault, times: 1 });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    expect(w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`)).toEqual([`multicast ${fault.status}`]);
    // Not accepted, not counted: the deliveries wait as first attempts, and the chunk is gone with them.
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).distinct().execute()).toEqual([{ state: 'pending', attempts: 0 }]);
    expect(await w.h.database.db.selectFrom('line_multicasts').select('id').execute()).toEqual([]);
    // All but student 30 cancel: the lone student goes by push; LINE takes it but the answer is lost.
    await upsertAppointments(w.h.database.db, w.h.clock, students.slice(0, 29).map((n) => ({ externalId: `big-${n}`, scheduleExternalId: 'big', student: { channel: 'school-a', lineUserId: userId(n) }, cancelled: true })), { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) });
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'after-accept-drop' }, times: 1 });
    await w.advance(60_000);
    // The retry goes under the delivery's own key (LINE: 409), not as the refused chunk under its key.
    expect(w.h.emulator.received(userId(30))).toHaveLength(1);
    expect(w.h.emulator.requests().slice(1).map((r) => `${r.endpoint} ${r.status}`)).toEqual(['push 200', 'push 409']);
    expect(await w.h.database.db.selectFrom('deliveries').select('state').where('state', '=', 'sent').execute()).toHaveLength(1);
  });

  it('batched: a page that fails while the other is in flight does not end the round early: stop() waits for the request, and hands back only what was not sent', async () => {
    w = await openEngineWorld(dialect, { notifications: { strategy: 'batched', batchSize: 1 } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T12:00:00Z', 50, [2], { feedbackUrl: null });
    // Student 1's push is slow: LINE answers 5 s later.
    const slow = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 5000 } });
    // The page of student 2 cannot read its booking (a dropped connection), once.
    const { id: c2 } = await w.h.database.db.selectFrom('appointments').select('id').where('external_id', '=', 'c2-2').executeTakeFirstOrThrow();
    const reads = new Set<unknown>();
    let failed = false;
    const flaky: KyselyPlugin = {
      transformQuery({ node, queryId }) {
        if (node.kind === 'SelectQueryNode' && JSON.stringify(node.from).includes('"appointments"')) reads.add(queryId);
        return node;
      },
      transformResult({ queryId, result }) {
        if (reads.delete(queryId) && !failed && result.rows.some((r) => r.id === c2)) {
          failed = true;
          return Promise.reject(new Error('connection reset (injected)'));
        }
        return Promise.resolve(result);
      },
    };
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const engine = w.engine('worker-a', w.h.database.db.withPlugin(flaky));
    const round = engine.runOnce();
    await slow.triggered;
    await vi.waitFor(() => expect(failed).toBe(true), { timeout: 5000, interval: 5 });
    // Shutdown while student 1's request is in flight, after student 2's page failed.
    const stopping = engine.stop();
    await w.h.clock.advance(6000);
    await stopping;
    await round;
    expect(failed).toBe(true);
    expect(w.h.logs.some((l) => l.includes('delivery round failed'))).toBe(true);
    expect(w.received().map((r) => r.to)).toEqual([userId(1)]);
    // Student 1's delivery was recorded as sent before the claims were handed back; student 2's
    // (claimed, never sent) went back at once, its attempt counted.
    const rows = await w.h.database.db
      .selectFrom('deliveries')
      .innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id')
      .select(['appointments.external_id', 'deliveries.state', 'deliveries.attempts', 'deliveries.lease_owner'])
      .orderBy('appointments.external_id')
      .execute();
    expect(rows).toEqual([
      { external_id: 'c1-1', state: 'sent', attempts: 1, lease_owner: null },
      { external_id: 'c2-2', state: 'pending', attempts: 1, lease_owner: null },
    ]);
  });

  it('timing wheel: stop() ends the round after the pages in flight; the pages not yet claimed stay for the next start', async () => {
    w = await openEngineWorld(dialect, { notifications: { strategy: 'timing-wheel', batchSize: 1 } });
    for (let n = 1; n <= 4; n++) await w.klass(`c${n}`, '2026-12-01T12:00:00Z', 50, [n], { feedbackUrl: null });
    const slow = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 5000 }, times: 2 });
    const engine = w.engine('worker-a');
    await engine.start();
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    // Both pages in flight (their requests held by LINE).
    await vi.waitFor(() => expect(slow.hits).toBe(2), { timeout: 5000, interval: 5 });
    const stopping = engine.stop();
    await w.h.clock.advance(6000);
    await stopping;
    // The two pages in flight went out; the two after them were not claimed once stopping.
    expect(w.received()).toHaveLength(2);
    const rows = await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).orderBy('state').execute();
    expect(rows).toEqual([
      { state: 'pending', attempts: 0 },
      { state: 'pending', attempts: 0 },
      { state: 'sent', attempts: 1 },
      { state: 'sent', attempts: 1 },
    ]);
  });

  const sentMetrics = async () => ({
    sent: (await w.metrics.outcomes.get()).values.filter((v) => v.labels.state === 'sent').reduce((a, v) => a + v.value, 0),
    lateness: (await w.metrics.lateness.get()).values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0,
    duplicatesPrevented: (await w.metrics.duplicatesPrevented.get()).values[0]?.value ?? 0,
  });

  it('metrics: a sender that lost its lease counts nothing; the holder that recorded the delivery counts it once', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const stall = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 8_000 } });
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const running = w.engine('worker-a').runOnce();
    await stall.triggered;
    await w.h.database.db.updateTable('deliveries').set({ lease_expires_at: new Date('2026-12-01T11:49:00Z') }).execute();
    expect(await w.engine('worker-b').runOnce()).toMatchObject({ claimed: 1, byState: { sent: 1 } });
    await w.h.clock.advance(9_000); // A's request lands: LINE answers 409, and A's write is fenced out
    expect(await running).toMatchObject({ claimed: 1, byState: {} });
    expect(w.received()).toHaveLength(1);
    // B's push went out (200); A's 409 prevented nothing B had not already recorded.
    expect(await sentMetrics()).toEqual({ sent: 1, lateness: 1, duplicatesPrevented: 0 });
  });

  it('metrics: a page that lost the lease of some of its deliveries counts only those it recorded', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T12:00:00Z', 50, [2], { feedbackUrl: null });
    // A's two pushes are held by LINE for 8 s.
    const stall = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { kind: 'delay', ms: 8_000 }, times: 2 });
    await w.h.clock.set(new Date('2026-12-01T11:50:00Z'));
    const running = w.engine('worker-a').runOnce();
    await vi.waitFor(() => expect(stall.hits).toBe(2), { timeout: 5000, interval: 5 });
    // Only student 2's lease runs out: B takes it over and sends it (LINE takes B's request first).
    const { id: second } = await w.h.database.db.selectFrom('deliveries').innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id').select('deliveries.id').where('appointments.external_id', '=', 'c2-2').executeTakeFirstOrThrow();
    await w.h.database.db.updateTable('deliveries').set({ lease_expires_at: new Date('2026-12-01T11:49:00Z') }).where('id', '=', second).execute();
    expect(await w.engine('worker-b').runOnce()).toMatchObject({ claimed: 1, byState: { sent: 1 } });
    await w.h.clock.advance(9_000); // A's requests land: student 1's is taken, student 2's answered 409
    expect(await running).toMatchObject({ claimed: 2, byState: { sent: 1 } });
    expect(w.received().map((r) => r.to).sort()).toEqual([userId(1), userId(2)]);
    expect(await sentMetrics()).toEqual({ sent: 2, lateness: 2, duplicatesPrevented: 0 });
    // Lateness as each was recorded: student 2 by B at once, student 1 by A 8 s late.
    const buckets = (await w.metrics.lateness.get()).values.filter((v) => v.metricName?.endsWith('_bucket'));
    expect(buckets.find((b) => b.labels.le === 5)?.value).toBe(1);
    expect(buckets.find((b) => b.labels.le === 10)?.value).toBe(2);
  });

  it('metrics: duplicates prevented count each student LINE\'s 409 covered, and never a resend LINE was not asked about', async () => {
    w = await openEngineWorld(dialect);
    const students = Array.from({ length: 30 }, (_, i) => i + 1);
    await w.klass('big', '2026-12-01T12:00:00Z', 50, students, { feedbackUrl: null });
    // LINE takes the chunk, but its answer is lost: the resend under the chunk's key is answered 409.
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/multicast', fault: { kind: 'after-accept-drop' } });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    await w.advance(10_000);
    expect(w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`)).toEqual(['multicast 200', 'multicast 409']);
    expect(await sentMetrics()).toEqual({ sent: 30, lateness: 30, duplicatesPrevented: 30 });

    await engine.stop();
    await w.klass('big2', '2026-12-01T13:00:00Z', 50, students, { feedbackUrl: null });
    await w.at('2026-12-01T12:50:00Z');
    // The next class's chunk goes out and is recorded sent, but recording its deliveries fails once:
    // their resend finds the chunk sent and asks LINE nothing. LINE prevented no duplicate there.
    let refuse = true;
    const refusing: KyselyPlugin = {
      transformQuery({ node }) {
        if (refuse && node.kind === 'RawNode' && JSON.stringify(node).includes("update deliveries set state = 'sent'")) {
          refuse = false;
          throw new Error('connection reset (injected)');
        }
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    };
    const second = w.engine('worker-b', w.h.database.db.withPlugin(refusing));
    await second.runOnce();
    expect(refuse).toBe(false);
    await w.h.database.db.updateTable('deliveries').set({ lease_expires_at: new Date('2026-12-01T12:00:00Z') }).where('state', '=', 'sending').execute();
    expect(await second.runOnce()).toMatchObject({ claimed: 30, byState: { sent: 30 } });
    expect(w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`)).toEqual(['multicast 200', 'multicast 409', 'multicast 200']);
    expect(await w.h.database.db.selectFrom('deliveries').select('state').where('state', '<>', 'sent').execute()).toEqual([]);
    expect(await sentMetrics()).toMatchObject({ sent: 60, duplicatesPrevented: 30 });
  });

  it('a feedback link first tried late (after downtime) is retried: LINE\'s 24-hour key window runs from its first attempt, not its due time', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1]);
    await w.h.database.db.updateTable('deliveries').set({ state: 'expired' }).where('kind', '=', 'meeting_url').execute();
    // Down from before 12:40 (the feedback link's due time) until 23 h 40 min after it; still useful.
    await w.at('2026-12-02T12:20:00Z');
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { status: 500 } });
    const engine = w.engine();
    await engine.start();
    expect(w.received()).toEqual([]);
    await w.advance(10_000);
    expect(w.h.emulator.requests().map((r) => `${r.endpoint} ${r.status}`)).toEqual(['push 500', 'push 200']);
    expect(w.received().map((r) => r.text.includes('forms.example.com/c1'))).toEqual([true]);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).where('kind', '=', 'feedback_url').executeTakeFirstOrThrow()).toEqual({ state: 'sent', attempts: 2 });
  });
});

describe('first attempt of a retried push (LINE\'s 24-hour retry-key window)', () => {
  const dueAt = new Date('2026-12-01T12:40:00Z');
  const first = new Date('2026-12-02T12:20:00Z');
  it('is the earliest request logged under its key when every earlier attempt has its log line; otherwise the due time', () => {
    expect(firstPushAttempt({ attempt: 2, dueAt }, { first, count: 1 })).toEqual(first);
    expect(firstPushAttempt({ attempt: 3, dueAt }, { first, count: 2 })).toEqual(first);
    // An attempt without its log line (a crash during the request, a pruned log): not known, the due time stands in.
    expect(firstPushAttempt({ attempt: 3, dueAt }, { first, count: 1 })).toEqual(dueAt);
    expect(firstPushAttempt({ attempt: 2, dueAt }, undefined)).toEqual(dueAt);
  });
});
