import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from './world.ts';

describe.each(dialects)('retried deliveries on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  it('a page retrying deliveries of several channels asks once for their earlier paths, not once per channel', async () => {
    w = await openEngineWorld(dialect, { notifications: { multicast: false } });
    await w.klass('a1', '2026-12-01T12:00:00Z', 50, [1, 2], { feedbackUrl: null });
    await w.klass('b1', '2026-12-01T12:00:00Z', 50, [3, 4], { feedbackUrl: null, channel: 'school-b' });
    // The sender's look-ups of earlier paths: chunk membership, then the requests logged per key.
    const lookups = { chunks: 0, logged: 0 };
    const watch: KyselyPlugin = {
      transformQuery({ node }) {
        if (node.kind === 'SelectQueryNode') {
          const text = JSON.stringify(node);
          if (text.includes('"line_multicast_members"')) lookups.chunks++;
          if (text.includes('"line_requests"')) lookups.logged++;
        }
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    };
    // Every first attempt fails (LINE 500): all four come back in one page as retries.
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { status: 500 }, times: 4 });
    const engine = w.engine(undefined, undefined, w.h.database.db.withPlugin(watch));
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    expect(w.received()).toEqual([]);
    expect(lookups).toEqual({ chunks: 0, logged: 0 });
    await w.at('2026-12-01T11:50:05Z');
    expect(w.received().map((r) => r.to).sort()).toEqual([1, 2, 3, 4].map(userId).sort());
    const rows = await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts']).execute();
    expect(rows.map((r) => [r.state, r.attempts])).toEqual(Array.from({ length: 4 }, () => ['sent', 2]));
    expect(lookups).toEqual({ chunks: 1, logged: 1 });
  });
});
