import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';

/**
 * Where recording files are kept. A download writes a partial object (resumable from its current
 * size) and commits it only after verification, so the final key never holds a half-written file.
 * Small on purpose: an S3-compatible store maps partials to multipart uploads and commit to completing one.
 */
export interface RecordingStore {
  /** Bytes of the partial object (0 when there is none). */
  partialSize(key: string): Promise<number>;
  /** The partial's bytes from the start (to re-hash before resuming). */
  readPartial(key: string): Readable;
  /**
   * Writes `source` into the partial from `offset` (anything beyond is dropped first; 0 starts over).
   * What was written stays even when the source fails midway, so a later attempt can resume.
   */
  append(key: string, offset: number, source: AsyncIterable<Uint8Array>): Promise<void>;
  discardPartial(key: string): Promise<void>;
  /** Makes the partial the object at `key`, atomically. */
  commit(key: string): Promise<void>;
  /** Size of the committed object, or null when there is none. */
  size(key: string): Promise<number | null>;
  /** The committed object's bytes in [start, end] (inclusive), or all of them. */
  read(key: string, range?: { start: number; end: number }): Readable;
  delete(key: string): Promise<void>;
}

/** The filesystem store: objects under `dir`, partials under `dir/.partial` (same filesystem, so rename is atomic). */
export function filesystemStore(dir: string): RecordingStore {
  const root = resolve(dir);
  const pathOf = (base: string, key: string): string => {
    // Keys come from our own storageKeyFor, but a path outside the root must never be possible.
    if (!key || isAbsolute(key) || key.split('/').some((s) => s === '..' || s === '.' || s === '')) throw new Error(`invalid storage key "${key}"`);
    const path = join(base, ...key.split('/'));
    if (!path.startsWith(base + sep)) throw new Error(`invalid storage key "${key}"`);
    return path;
  };
  const partialRoot = join(root, '.partial');
  const finalPath = (key: string): string => pathOf(root, key);
  const partialPath = (key: string): string => pathOf(partialRoot, key);
  const sizeOf = async (path: string): Promise<number | null> => {
    try {
      return (await stat(path)).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };

  return {
    partialSize: async (key) => (await sizeOf(partialPath(key))) ?? 0,
    readPartial: (key) => createReadStream(partialPath(key)),
    async append(key, offset, source) {
      const path = partialPath(key);
      await mkdir(dirname(path), { recursive: true });
      const current = await sizeOf(path);
      if ((current ?? 0) < offset) throw new Error(`the partial of ${key} has ${current ?? 0} bytes: cannot resume at byte ${offset}`);
      if (current !== null && current > offset) await truncate(path, offset);
      // Each chunk is written before the next is read, so what the source gave is on disk when it fails.
      const handle = await open(path, offset === 0 ? 'w' : 'a');
      try {
        for await (const chunk of source) await handle.write(chunk);
      } finally {
        await handle.close();
      }
    },
    discardPartial: async (key) => rm(partialPath(key), { force: true }),
    async commit(key) {
      const target = finalPath(key);
      await mkdir(dirname(target), { recursive: true });
      await rename(partialPath(key), target);
    },
    size: async (key) => sizeOf(finalPath(key)),
    read: (key, range) => createReadStream(finalPath(key), range ? { start: range.start, end: range.end } : {}),
    delete: async (key) => rm(finalPath(key), { force: true }),
  };
}
