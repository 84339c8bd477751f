import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';

/**
 * Where recording files are kept. Each claim writes a partial of its own (named by partialName), so
 * a worker that lost its lease can never write into the bytes its successor uses; the successor
 * resumes from a copy. A partial becomes the object only by commit, which is atomic and never
 * replaces an object: the final key never holds a half-written file, and an object never changes
 * once there. Small on purpose: an S3-compatible store maps partials to multipart uploads
 * (copy = UploadPartCopy) and commit to completing one with `If-None-Match: *`.
 */
export interface RecordingStore {
  /** Bytes of the partial (0 when there is none). */
  partialSize(partial: string): Promise<number>;
  /** The partial's bytes from the start (to re-hash before resuming). */
  readPartial(partial: string): Readable;
  /**
   * Writes `source` into the partial from `offset` (anything beyond is dropped first; 0 starts over).
   * What was written stays even when the source fails midway, so a later attempt can resume.
   */
  append(partial: string, offset: number, source: AsyncIterable<Uint8Array>): Promise<void>;
  /** Starts `to` with the first `bytes` of `from`; returns the bytes copied (fewer when `from` is shorter or gone). */
  copyPartial(from: string, to: string, bytes: number): Promise<number>;
  discardPartial(partial: string): Promise<void>;
  /** Every partial of `key`, whichever claim wrote it. */
  partialsOf(key: string): Promise<string[]>;
  /**
   * Makes the partial the object at `key`, atomically, only if it holds exactly `size` bytes. Never
   * replaces an object: 'exists' when one is there already (another claim's), the partial then kept.
   */
  commit(partial: string, key: string, size: number): Promise<'committed' | 'exists'>;
  /** Size of the committed object, or null when there is none. */
  size(key: string): Promise<number | null>;
  /** The committed object's bytes in [start, end] (inclusive), or all of them. */
  read(key: string, range?: { start: number; end: number }): Readable;
  delete(key: string): Promise<void>;
}

const SUFFIX = /^[0-9a-f]{16}$/;

/** The partial one claim (its fencing token) writes for `key`. */
export function partialName(key: string, claimToken: string): string {
  return `${key}.${createHash('sha256').update(claimToken).digest('hex').slice(0, 16)}`;
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
  const partialPath = (partial: string): string => pathOf(partialRoot, partial);
  const sizeOf = async (path: string): Promise<number | null> => {
    try {
      return (await stat(path)).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  };

  /** See RecordingStore.append. */
  const append = async (partial: string, offset: number, source: AsyncIterable<Uint8Array>): Promise<void> => {
    const path = partialPath(partial);
    await mkdir(dirname(path), { recursive: true });
    const current = await sizeOf(path);
    if ((current ?? 0) < offset) throw new Error(`the partial ${partial} has ${current ?? 0} bytes: cannot resume at byte ${offset}`);
    if (current !== null && current > offset) await truncate(path, offset);
    // Each chunk is written before the next is read, so what the source gave is on disk when it fails.
    const handle = await open(path, offset === 0 ? 'w' : 'a');
    try {
      for await (const chunk of source) await handle.write(chunk);
    } finally {
      await handle.close();
    }
  };

  return {
    partialSize: async (partial) => (await sizeOf(partialPath(partial))) ?? 0,
    readPartial: (partial) => createReadStream(partialPath(partial)),
    append,
    async copyPartial(from, to, bytes) {
      if (bytes <= 0 || (await sizeOf(partialPath(from))) === null) return 0;
      let copied = 0;
      const chunks = async function* (): AsyncGenerator<Uint8Array> {
        for await (const chunk of createReadStream(partialPath(from), { end: bytes - 1 })) {
          copied += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      };
      await append(to, 0, chunks());
      return copied;
    },
    discardPartial: async (partial) => rm(partialPath(partial), { force: true }),
    async partialsOf(key) {
      const path = partialPath(key);
      const prefix = `${basename(path)}.`;
      const names = await readdir(dirname(path)).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return [];
        throw error;
      });
      return names.filter((n) => n.startsWith(prefix) && SUFFIX.test(n.slice(prefix.length))).map((n) => `${key}.${n.slice(prefix.length)}`);
    },
    async commit(partial, key, size) {
      const from = partialPath(partial);
      const target = finalPath(key);
      const actual = await sizeOf(from);
      if (actual !== size) {
        // Committed already (the partial went with it): idempotent; the caller checks what is there.
        if ((await sizeOf(target)) !== null) return 'exists';
        throw new Error(`the partial ${partial} has ${actual ?? 'no'} bytes where ${size} were verified`);
      }
      await mkdir(dirname(target), { recursive: true });
      try {
        // link, unlike rename, refuses to replace: two claims can never swap the object under a reader.
        await link(from, target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') return 'exists';
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
        // No hard links on this filesystem: check, then rename (racing only a claim that lost its lease).
        if ((await sizeOf(target)) !== null) return 'exists';
        await rename(from, target);
        return 'committed';
      }
      await rm(from, { force: true }).catch(() => undefined);
      return 'committed';
    },
    size: async (key) => sizeOf(finalPath(key)),
    read: (key, range) => createReadStream(finalPath(key), range ? { start: range.start, end: range.end } : {}),
    delete: async (key) => rm(finalPath(key), { force: true }),
  };
}
