import { describe, expect, it } from 'vitest';
import { eager } from '../../src/recordings/eager.ts';

describe('eager', () => {
  it('yields every chunk that arrived before the failure, then the failure', async () => {
    async function* source(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('ab');
      yield Buffer.from('cd');
      throw new Error('terminated');
    }
    const { chunks } = eager(source(), 1024);
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const c of chunks) got.push(Buffer.from(c).toString());
      })(),
    ).rejects.toThrow('terminated');
    expect(got).toEqual(['ab', 'cd']);
  });

  it('stops reading ahead at the high-water mark and cancels the source when stopped', async () => {
    let pulled = 0;
    let cancelled = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) {
          pulled++;
          yield Buffer.alloc(10);
        }
      } finally {
        cancelled = true;
      }
    }
    const reader = eager(source(), 25);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(pulled).toBeLessThanOrEqual(4);
    reader.stop();
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(cancelled).toBe(true);
  });
});
