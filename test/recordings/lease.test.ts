import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { storageKeyFor } from '../../src/recordings/parse.ts';
import { claimRecordings } from '../../src/recordings/rows.ts';
import { filesystemStore, partialName } from '../../src/recordings/store.ts';
import { claimToken, downloadClaimed } from '../../src/recordings/worker.ts';
import { dialects } from '../support/databases.ts';
import { silent } from '../zoom/world.ts';
import { startOrigin, type Origin } from './origin.ts';
import { file, openRecordingWorld, type RecordingWorld } from './world.ts';

const SIZE = 100_000;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.each(dialects)('recording leases and commits (%s)', (dialect) => {
  let w: RecordingWorld;
  let origin: Origin;
  let key: string;
  beforeEach(async () => {
    w = await openRecordingWorld(dialect);
    origin = await startOrigin(SIZE);
  });
  afterEach(async () => {
    await origin.close();
    await w.close();
  });

  /** One MP4 recorded, whose file URL is the test origin (which can hold a response part-way). */
  const recordOne = async (id: string): Promise<void> => {
    await w.recordings().ingest(await w.record([file(id, 'MP4', SIZE)]));
    await w.database.db.updateTable('recordings').set({ download_url: origin.url }).execute();
    key = storageKeyFor(String(w.meetingNumber), id, 'MP4', 'MP4');
  };
  /** Sizes of every partial of the file on disk, read from the directory (whatever names the store uses). */
  const partials = async (): Promise<number[]> => {
    const dir = join(w.dir, '.partial', dirname(key));
    const names = (await readdir(dir).catch(() => [])).filter((n) => n.startsWith(basename(key)));
    return Promise.all(names.map(async (n) => (await stat(join(dir, n))).size));
  };
  const final = (): Promise<Buffer | null> => readFile(join(w.dir, key)).catch(() => null);
  const row = async () => (await w.rows())[0];

  it('stops a download whose lease renewal hangs, before the lease can run out', async () => {
    await recordOne('hung');
    const held = origin.hold(40_000);
    const run = w.recordings().runOnce();
    await vi.waitFor(async () => expect(await partials()).toEqual([40_000]), { timeout: 5000, interval: 10 });
    // A transaction holding the row blocks the renewal (PostgreSQL: the row lock; SQLite: the one connection).
    let unblock = (): void => undefined;
    let locked = (): void => undefined;
    const isLocked = new Promise<void>((r) => (locked = r));
    const blocker = w.database.db
      .transaction()
      .execute(async (trx) => {
        await trx.updateTable('recordings').set({ updated_at: w.clock.now() }).execute();
        locked();
        await new Promise<void>((r) => (unblock = r));
      })
      .catch(() => undefined);
    await isLocked;
    await w.clock.advance(90_000); // lease 2 min: renewal at 40 s hangs; at 2 min − 30 s the worker gives up
    await held.closed; // the transfer was cut (without the watchdog it would wait for its 30 min deadline)
    unblock();
    await blocker;
    expect(await run).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    expect(await row()).toMatchObject({ state: 'pending', bytesStored: 40_000, lastError: expect.stringMatching(/lease not renewed within 90000 ms/) });
    expect(await final()).toBeNull();
  });

  it('never commits for a worker that lost its lease, even when its download completes first', async () => {
    await recordOne('late');
    const held = origin.hold(40_000);
    const run = w.recordings().runOnce();
    await vi.waitFor(async () => expect(await partials()).toEqual([40_000]), { timeout: 5000, interval: 10 });
    // Its lease ran out unnoticed (a long pause) and another worker claimed the file.
    await w.database.db.updateTable('recordings').set({ lease_owner: 'other#1' }).execute();
    held.release();
    expect(await run).toEqual({ claimed: 1, outcomes: { lost: 1 } });
    expect(await final()).toBeNull(); // the bytes are complete, but not this worker's to put in place
    expect(await row()).toMatchObject({ state: 'downloading', leaseToken: 'other#1', checksumSha256: null });
  });

  it('a successor resumes from a copy of the checkpointed bytes; the old worker never writes into its file', async () => {
    await recordOne('taken');
    const a = w.recordings({ owner: 'worker-a' });
    const b = w.recordings({ owner: 'worker-b' });
    const heldA = origin.hold(40_000);
    const runA = a.runOnce();
    await vi.waitFor(async () => expect(await partials()).toEqual([40_000]), { timeout: 5000, interval: 10 });
    await w.clock.advance(40_000); // a's renewal records its progress (a real write: wait for it to land)
    await vi.waitFor(async () => expect(await row()).toMatchObject({ bytesStored: 40_000 }), { timeout: 5000, interval: 10 });
    const tokenA = (await row())?.leaseToken ?? '';
    expect(await row()).toMatchObject({ bytesStored: 40_000, storageKey: partialName(key, tokenA) });
    // a stalls past its lease as far as the database knows; b takes the file over.
    await w.database.db.updateTable('recordings').set({ lease_expires_at: new Date(w.clock.now().getTime() - 1) }).execute();
    const heldB = origin.hold(20_000);
    const runB = b.runOnce();
    await heldB.sent;
    await vi.waitFor(async () => expect(await partials()).toEqual([60_000]), { timeout: 5000, interval: 10 }); // a's partial is gone: copied
    heldA.release(); // a's connection delivers the rest: into its own (removed) partial, never b's
    expect(await runA).toEqual({ claimed: 1, outcomes: { lost: 1 } });
    heldB.release();
    expect(await runB).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    expect(origin.ranges).toEqual([null, 'bytes=40000-']);
    expect(await final()).toEqual(origin.bytes);
    expect(await row()).toMatchObject({ state: 'stored', checksumSha256: sha(origin.bytes), storageKey: key });
    expect(await partials()).toEqual([]);
  });

  it('reads at most 4 KiB of an HTML refusal page and hangs up on the rest', async () => {
    await recordOne('html');
    const page = origin.endlessHtml();
    expect(await w.recordings().runOnce()).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    await page.closed;
    expect((await row())?.lastError).toMatch(/an HTML page \(status 200\) instead of the file: "Only the host can download this recording\./);
  });

  it('downloads nothing for a claim handed in after stop began', async () => {
    await w.recordings().ingest(await w.record([file('stopped', 'MP4', 10_000)]));
    const token = claimToken('w');
    const [claimed] = await claimRecordings(w.database.db, w.clock, { token, leaseMs: 120_000, limit: 1 });
    if (!claimed) throw new Error('nothing claimed');
    const deps = { db: w.database.db, box: w.box, clock: w.clock, config: w.config, client: w.client, store: filesystemStore(w.dir), logger: silent, owner: 'w' };
    expect(await downloadClaimed(deps, claimed, AbortSignal.abort())).toBe('lost');
    expect(w.em.downloads.requests()).toEqual([]);
    expect(await row()).toMatchObject({ state: 'pending', attempts: 0, leaseToken: null });
  });
});
