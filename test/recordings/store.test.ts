import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { filesystemStore, partialName, type RecordingStore } from '../../src/recordings/store.ts';

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield Buffer.from(p);
}
async function* failing(part: string): AsyncGenerator<Uint8Array> {
  yield Buffer.from(part);
  throw new Error('connection reset');
}
async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const out: Buffer[] = [];
  for await (const c of stream) out.push(c as Buffer);
  return Buffer.concat(out).toString('utf8');
}

describe('filesystemStore', () => {
  let dir: string;
  let store: RecordingStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'store-'));
    store = filesystemStore(dir);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps a partial through a failed write, resumes it, and commits atomically', async () => {
    const p = partialName('m/f.mp4', 'w#1');
    await expect(store.append(p, 0, failing('hello '))).rejects.toThrow('connection reset');
    expect(await store.partialSize(p)).toBe(6);
    expect(await store.size('m/f.mp4')).toBeNull(); // never a half file at the final key
    await store.append(p, 6, chunks('wor', 'ld'));
    const hash = createHash('sha256');
    for await (const c of store.readPartial(p)) hash.update(c as Buffer);
    expect(hash.digest('hex')).toBe(createHash('sha256').update('hello world').digest('hex'));
    await store.commit(p, 'm/f.mp4', 11);
    expect(await store.size('m/f.mp4')).toBe(11);
    expect(await store.partialSize(p)).toBe(0);
    expect(await text(store.read('m/f.mp4', { start: 6, end: 10 }))).toBe('world');
    expect(await readdir(join(dir, 'm'))).toEqual(['f.mp4']);
  });

  it('drops bytes beyond the offset, starts over at 0, and refuses a gap', async () => {
    await store.append('k.0', 0, chunks('abcdef'));
    await store.append('k.0', 3, chunks('XY'));
    expect(await store.partialSize('k.0')).toBe(5);
    await store.append('k.0', 0, chunks('new'));
    expect(await store.partialSize('k.0')).toBe(3);
    await expect(store.append('k.0', 10, chunks('z'))).rejects.toThrow(/cannot resume at byte 10/);
    await store.discardPartial('k.0');
    expect(await store.partialSize('k.0')).toBe(0);
  });

  it('gives each claim its own partial; a successor copies a prefix and never shares the file', async () => {
    const a = partialName('m/f.mp4', 'worker-a#1');
    const b = partialName('m/f.mp4', 'worker-b#2');
    expect(a).not.toBe(b);
    await store.append(a, 0, chunks('0123456789'));
    expect(await store.copyPartial(a, b, 4)).toBe(4);
    await store.append(a, 10, chunks('zombie')); // the old writer goes on: b does not see it
    await store.append(b, 4, chunks('456789'));
    expect(await text(store.readPartial(b))).toBe('0123456789');
    expect(await store.copyPartial('m/f.mp4.gone', b, 4)).toBe(0);
    expect((await store.partialsOf('m/f.mp4')).sort()).toEqual([a, b].sort());
    // Commit checks the size it is told right before the rename.
    await expect(store.commit(a, 'm/f.mp4', 10)).rejects.toThrow(/has 16 bytes where 10 were verified/);
    expect(await store.size('m/f.mp4')).toBeNull();
    await store.commit(b, 'm/f.mp4', 10);
    expect(await store.partialsOf('m/f.mp4')).toEqual([a]);
  });

  it('never replaces an object: a later commit answers exists and keeps its partial; a repeat is idempotent', async () => {
    const a = partialName('m/f.mp4', 'worker-a#1');
    const b = partialName('m/f.mp4', 'worker-b#2');
    await store.append(a, 0, chunks('first'));
    await store.append(b, 0, chunks('other'));
    expect(await store.commit(a, 'm/f.mp4', 5)).toBe('committed');
    expect(await store.partialsOf('m/f.mp4')).toEqual([b]);
    expect(await store.commit(b, 'm/f.mp4', 5)).toBe('exists');
    expect(await text(store.read('m/f.mp4'))).toBe('first');
    expect(await text(store.readPartial(b))).toBe('other');
    // A commit repeated after it happened (its partial gone with it) finds the object in place.
    expect(await store.commit(a, 'm/f.mp4', 5)).toBe('exists');
  });

  it('refuses keys that leave the directory, and deletes', async () => {
    expect(() => store.read('../x')).toThrow(/invalid storage key/);
    await expect(store.size('/etc/passwd')).rejects.toThrow(/invalid storage key/);
    await store.append('a/b.1', 0, chunks('1'));
    await store.commit('a/b.1', 'a/b', 1);
    await store.delete('a/b');
    expect(await store.size('a/b')).toBeNull();
  });
});
