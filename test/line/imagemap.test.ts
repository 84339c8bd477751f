import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import { createImagemapImages } from '../../src/line/imagemap.ts';
import { imagemapHash } from '../../src/line/imagemap-render.ts';
import type { ImagemapRef } from '../../src/line/notifications.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

let database: TestDatabase | undefined;
let dir: string | undefined;
afterEach(async () => {
  await database?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  database = dir = undefined;
});

const jpeg = (background: string): Promise<Buffer> => sharp({ create: { width: 1040, height: 520, channels: 3, background } }).jpeg().toBuffer();

describe.each(dialects)('imagemap images on %s', (dialect) => {
  it('two source changes in quick succession: the later one stays in force even if the earlier finishes last', async () => {
    database = await openTestDatabase(dialect);
    dir = mkdtempSync(join(tmpdir(), 'imagemap-order-'));
    const file = join(dir, 'scheduler.yaml');
    const source = { file, env: {} };
    writeFileSync(file, '{}');
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const config = createConfigStore(loadConfig(source), source, clock);
    const images = createImagemapImages({ db: database.db, clock, config });

    // The first source is a named pipe: reading it waits, deterministically, until the test writes into it.
    const slow = join(dir, 'slow.jpg');
    execFileSync('mkfifo', [slow]);
    writeFileSync(file, `imagemap:\n  source: ${slow}\n`);
    expect(config.reload('api')).toMatchObject({ status: 'applied', changed: ['imagemap.source'] });
    const first = images.ensure();

    let second: ImagemapRef | undefined;
    const fast = join(dir, 'fast.jpg');
    const fastBytes = await jpeg('#3366cc');
    try {
      writeFileSync(fast, fastBytes);
      writeFileSync(file, `imagemap:\n  source: ${fast}\n`);
      expect(config.reload('api')).toMatchObject({ status: 'applied', changed: ['imagemap.source'] });
      second = await images.ensure();
      expect(second.hash).toBe(imagemapHash(fastBytes));
      expect(images.current()).toEqual(second);
    } finally {
      // Lets the first request go on: it renders and stores the older source after the newer one is in force.
      await writeFile(slow, await jpeg('#cc3333'));
    }
    await first;
    await images.settled();
    expect(images.current()).toEqual(second);
  });
});
