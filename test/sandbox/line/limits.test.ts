import { describe, expect, it } from 'vitest';
import { virtualClock } from '../../../src/clock.ts';
import { ALICE, BOB, CAROL, newKey, sdk, sdkError, startWithChannel, text } from './helpers.ts';

const RATE_LIMITED = { message: 'The API rate limit has been exceeded. Try again later.' };
const MONTHLY_LIMIT = { message: 'You have reached your monthly limit.' };

describe('rate limits (token bucket per channel and endpoint)', () => {
  it('push over the per-second limit answers 429 until tokens refill on the clock', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock, rateLimits: { push: 3 } });
    const client = sdk(line);
    const pushOnce = () => client.pushMessage({ to: ALICE, messages: [text('x')] });

    for (let i = 0; i < 3; i++) await pushOnce();
    const err = await sdkError(pushOnce);
    expect(err.status).toBe(429);
    expect(JSON.parse(err.body)).toEqual(RATE_LIMITED);
    expect(line.received(ALICE)).toHaveLength(3);

    // One token comes back every 1000/3 ms.
    await clock.advance(300);
    expect((await sdkError(pushOnce)).status).toBe(429);
    await clock.advance(34);
    await pushOnce();
    expect((await sdkError(pushOnce)).status).toBe(429);

    await clock.advance(1000);
    for (let i = 0; i < 3; i++) await pushOnce();
    expect(line.received(ALICE)).toHaveLength(7);
    expect(line.counters().rateLimited).toBe(3);
  });

  it('limits are per endpoint and per channel', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock, rateLimits: { push: 1, multicast: 1 } });
    const ch2 = line.addChannel({ users: [{ userId: ALICE }] });
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] });
    await sdk(line).multicast({ to: [ALICE], messages: [text('x')] });
    await sdk(line, ch2.accessToken).pushMessage({ to: ALICE, messages: [text('x')] });
    expect((await sdkError(() => sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }))).status).toBe(429);
    expect((await sdkError(() => sdk(line).multicast({ to: [ALICE], messages: [text('x')] }))).status).toBe(429);
    // Other endpoints keep LINE's default limit.
    expect(await sdk(line).getMessageQuota()).toEqual({ type: 'none' });
  });

  it('a rate-limited request is not accepted: a retry with the same key delivers', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock, rateLimits: { push: 1 } });
    await sdk(line).pushMessage({ to: BOB, messages: [text('x')] });
    const key = newKey();
    expect((await sdkError(() => sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key))).status).toBe(429);
    await clock.advance(1000);
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key);
    expect(line.received(ALICE)).toHaveLength(1);
  });

  it('defaults: push 2,000/s, multicast 200/s', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock });
    const client = sdk(line);
    const calls = Array.from({ length: 201 }, () =>
      client.multicast({ to: [ALICE], messages: [text('x')] }).then(
        () => 200,
        (err: { status: number }) => err.status,
      ),
    );
    const statuses = await Promise.all(calls);
    expect(statuses.filter((s) => s === 200)).toHaveLength(200);
    expect(statuses.filter((s) => s === 429)).toHaveLength(1);
  });
});

describe('monthly quota', () => {
  it('each recipient counts; over the limit answers 429 "You have reached your monthly limit." and sends nothing', async () => {
    const clock = virtualClock('2026-03-15T00:00:00Z');
    const line = await startWithChannel({ clock });
    line.setMonthlyQuota('ch1', 3);
    const client = sdk(line);

    await client.multicast({ to: [ALICE, BOB], messages: [text('a'), text('b')] });
    expect(await client.getMessageQuotaConsumption()).toEqual({ totalUsage: 2 });

    // All or nothing: 2 recipients would exceed 3.
    const over = await sdkError(() => client.multicast({ to: [ALICE, CAROL], messages: [text('x')] }));
    expect(over.status).toBe(429);
    expect(JSON.parse(over.body)).toEqual(MONTHLY_LIMIT);
    expect(line.received(CAROL)).toEqual([]);

    await client.pushMessage({ to: CAROL, messages: [text('x')] });
    const full = await sdkError(() => client.pushMessage({ to: ALICE, messages: [text('x')] }));
    expect(JSON.parse(full.body)).toEqual(MONTHLY_LIMIT);
    expect(await client.getMessageQuota()).toEqual({ type: 'limited', value: 3 });
    expect(await client.getMessageQuotaConsumption()).toEqual({ totalUsage: 3 });
    expect(line.counters()).toMatchObject({ monthlyLimited: 2, rateLimited: 0 });

    // A monthly-limit 429 is not an acceptance: the key stays usable.
    const key = newKey();
    expect((await sdkError(() => client.pushMessage({ to: ALICE, messages: [text('x')] }, key))).status).toBe(429);
    line.setMonthlyQuota('ch1', 'none');
    await client.pushMessage({ to: ALICE, messages: [text('x')] }, key);
    expect(await client.getMessageQuota()).toEqual({ type: 'none' });
  });

  it('usage resets when the month changes (Japan time)', async () => {
    const clock = virtualClock('2026-03-31T14:00:00Z'); // 23:00 JST on 31 March
    const line = await startWithChannel({ clock });
    line.setMonthlyQuota('ch1', 1);
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] });
    expect((await sdkError(() => sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }))).status).toBe(429);

    await clock.advance(60 * 60 * 1000); // 00:00 JST on 1 April
    expect(await sdk(line).getMessageQuotaConsumption()).toEqual({ totalUsage: 0 });
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] });
    expect(line.monthlyUsage('ch1')).toBe(1);
  });

  it('usage can be preset for tests', async () => {
    const line = await startWithChannel({ channels: [{ channelId: 'q', accessToken: 'q-token', monthlyQuota: 200, users: [{ userId: ALICE }] }] });
    line.setMonthlyUsage('q', 200);
    const err = await sdkError(() => sdk(line, 'q-token').pushMessage({ to: ALICE, messages: [text('x')] }));
    expect(JSON.parse(err.body)).toEqual(MONTHLY_LIMIT);
    expect(await sdk(line, 'q-token').getMessageQuotaConsumption()).toEqual({ totalUsage: 200 });
  });
});
