import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from '../zoom/world.ts';

describe.each(dialects)('a finished class whose meeting was closed, edited after the fact, on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });
  const zoomMeeting = async (id: string) => world.em.meeting(Number((await world.meetingOf(id)).meetingId));

  for (const [name, edit] of [
    ['trial flag flipped', { trial: true }],
    ['times corrected (still in the past)', {}],
  ] as const) {
    it(`${name}: the meeting is not reopened to late students`, async () => {
      world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
      await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
      await world.provisioner().runPass();
      await world.clock.set(new Date('2026-12-01T11:30:00Z'));
      expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1 });
      expect((await zoomMeeting('s1'))?.settings.join_before_host).toBe(false);
      await world.clock.set(new Date('2026-12-01T12:00:00Z'));
      if (name.startsWith('trial')) await world.schedule('s1', '2026-12-01T10:00:00Z', 50, edit);
      else await world.schedule('s1', '2026-12-01T10:05:00Z', 50); // after the fact: 10:05-10:55, both past
      const passes: unknown[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await world.provisioner().runPass();
        passes.push({ outcomes: r.outcomes, jbh: (await zoomMeeting('s1'))?.settings.join_before_host, row: await world.meetingOf('s1') });
        await world.clock.advance(3 * 60 * 60_000);
      }
      expect(passes.every((p) => (p as { jbh: boolean }).jbh === false)).toBe(true);
    });
  }
});
