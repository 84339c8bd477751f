import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storageKeyFor } from '../../src/recordings/parse.ts';
import { replayUrlFor } from '../../src/recordings/replay.ts';
import { filesystemStore, type RecordingStore } from '../../src/recordings/store.ts';
import { dialects } from '../support/databases.ts';
import { file, openRecordingWorld, replayApp, type RecordingWorld } from './world.ts';

const SIZE = 50_000;
const LEASE_MS = 120_000;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const never = new Promise<never>(() => undefined);

describe.each(dialects)('recording crashes and repairs (%s)', (dialect) => {
  let w: RecordingWorld;
  let real: RecordingStore;
  let app: FastifyInstance | undefined;
  beforeEach(async () => {
    w = await openRecordingWorld(dialect);
    real = filesystemStore(w.dir);
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await w.close();
  });

  const row = async () => (await w.rows())[0];
  const keyOf = (id: string): string => storageKeyFor(String(w.meetingNumber), id, 'MP4', 'MP4');
  const fileSteps = (id: string) => w.em.downloads.requests().filter((r) => r.fileId === id && r.step === 'file');
  const partials = async (id: string): Promise<string[]> => {
    const key = keyOf(id);
    return (await readdir(join(w.dir, '.partial', dirname(key))).catch(() => [])).filter((n) => n.startsWith(`${basename(key)}.`));
  };
  /** As a process restarting after a crash would find it: the dead claim's lease has run out. */
  const expireLease = async (): Promise<void> => {
    await w.clock.advance(LEASE_MS + 1);
  };
  const replay = async (): Promise<{ status: number; body: Buffer }> => {
    app ??= await replayApp(w, real);
    const id = (await row())?.id ?? 0;
    const res = await app.inject({ method: 'GET', url: new URL(replayUrlFor(w.config.current(), w.box, id, w.clock.now())).pathname });
    return { status: res.statusCode, body: res.rawPayload };
  };

  it('a crash before the file is in place never leaves a stored row without it: the next claim puts it in place', async () => {
    await w.recordings().ingest(await w.record([file('gap', 'MP4', SIZE)]));
    let commitCalled = (): void => undefined;
    const atCommit = new Promise<void>((r) => (commitCalled = r));
    // Process 1 dies in the commit (a hung shared filesystem, then a kill): the rename never happens.
    const dying: RecordingStore = {
      ...real,
      commit: () => {
        commitCalled();
        return never;
      },
    };
    void w.recordings({ store: dying, owner: 'dying' }).runOnce();
    await atCommit;
    // Whatever the order of the steps, the row must not claim a file that is not there.
    const after = await row();
    expect(after?.state === 'stored' ? await real.size(after.storageKey ?? '') : 'not stored').not.toBeNull();

    await expireLease();
    expect(await w.recordings({ owner: 'restarted' }).runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    const served = w.em.recordingFile('gap')?.bytes ?? Buffer.alloc(0);
    expect(await row()).toMatchObject({ state: 'stored', storageKey: keyOf('gap'), checksumSha256: sha(served), bytesStored: SIZE });
    expect(await readFile(join(w.dir, keyOf('gap')))).toEqual(served);
    expect(fileSteps('gap')).toHaveLength(1); // the complete partial was put in place, not fetched again
    expect(await partials('gap')).toEqual([]);
    const res = await replay();
    expect(res.status).toBe(200);
    expect(res.body.equals(served)).toBe(true);
  });

  it('a crash after the file is in place but before the settle: the next claim stores it without downloading it again', async () => {
    await w.recordings().ingest(await w.record([file('after', 'MP4', SIZE)]));
    let committed = (): void => undefined;
    const inPlace = new Promise<void>((r) => (committed = r));
    // Process 1 puts the file in place, then dies before the database hears of it.
    const dying: RecordingStore = {
      ...real,
      commit: async (partial, key, size) => {
        await real.commit(partial, key, size);
        committed();
        return never;
      },
    };
    void w.recordings({ store: dying, owner: 'dying' }).runOnce();
    await inPlace;
    expect(await row()).toMatchObject({ state: 'downloading' });

    await expireLease();
    expect(await w.recordings({ owner: 'restarted' }).runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    const served = w.em.recordingFile('after')?.bytes ?? Buffer.alloc(0);
    expect(await row()).toMatchObject({ state: 'stored', storageKey: keyOf('after'), checksumSha256: sha(served), contentType: 'video/mp4', bytesStored: SIZE, lastError: null });
    expect(fileSteps('after')).toHaveLength(1);
    expect(w.stored).toEqual([{ id: (await row())?.id, scheduleId: w.scheduleId, fileType: 'MP4' }]);
    const res = await replay();
    expect(res.status).toBe(200);
    expect(res.body.equals(served)).toBe(true);
  });

  it('a worker that lost its lease after its last check puts the same bytes in place harmlessly; the holder keeps them', async () => {
    await w.recordings().ingest(await w.record([file('both', 'MP4', SIZE)]));
    let reachedA = (): void => undefined;
    let releaseA = (): void => undefined;
    let committedA = (): void => undefined;
    const atA = new Promise<void>((r) => (reachedA = r));
    const goA = new Promise<void>((r) => (releaseA = r));
    const doneA = new Promise<void>((r) => (committedA = r));
    // A stalls (a long pause) right before its commit, long enough for its lease to run out.
    const storeA: RecordingStore = {
      ...real,
      commit: async (partial, key, size) => {
        reachedA();
        await goA;
        try {
          return await real.commit(partial, key, size);
        } finally {
          committedA();
        }
      },
    };
    // B takes the file over; A wakes up and commits while B copies A's bytes (before B removes A's partial).
    const commitsB: string[] = [];
    const storeB: RecordingStore = {
      ...real,
      copyPartial: async (from, to, bytes) => {
        const copied = await real.copyPartial(from, to, bytes);
        releaseA();
        await doneA;
        return copied;
      },
      commit: async (partial, key, size) => {
        const placed = await real.commit(partial, key, size);
        commitsB.push(placed);
        return placed;
      },
    };
    const runA = w.recordings({ store: storeA, owner: 'worker-a' }).runOnce();
    await atA;
    await expireLease();
    const runB = w.recordings({ store: storeB, owner: 'worker-b' }).runOnce();
    expect(await runA).toEqual({ claimed: 1, outcomes: { lost: 1 } });
    expect(await runB).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    expect(commitsB).toEqual(['exists']); // A's object stayed; B checked it and kept it
    const served = w.em.recordingFile('both')?.bytes ?? Buffer.alloc(0);
    expect(await readFile(join(w.dir, keyOf('both')))).toEqual(served);
    expect(await row()).toMatchObject({ state: 'stored', checksumSha256: sha(served), leaseToken: null });
    expect(fileSteps('both')).toHaveLength(1);
    expect(await partials('both')).toEqual([]);
  });

  it('a commit that fails leaves the row unsettled (never stored without its file) and the next attempt commits without downloading', async () => {
    await w.recordings().ingest(await w.record([file('eio', 'MP4', SIZE)]));
    const seen: (string | undefined)[] = [];
    const broken: RecordingStore = {
      ...real,
      commit: async () => {
        seen.push((await row())?.state); // what the replay route and the catch-up would see meanwhile
        throw Object.assign(new Error('EIO: i/o error, link'), { code: 'EIO' });
      },
    };
    expect(await w.recordings({ store: broken }).runOnce()).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    expect(seen).toEqual(['downloading']);
    expect(await row()).toMatchObject({ state: 'pending', bytesStored: SIZE, checksumSha256: null, lastError: 'could not put the file in place: EIO: i/o error, link' });
    await w.clock.advance(60_000);
    expect(await w.recordings().runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    expect(fileSteps('eio')).toHaveLength(1);
    expect(await readFile(join(w.dir, keyOf('eio')))).toEqual(w.em.recordingFile('eio')?.bytes);
    expect(await partials('eio')).toEqual([]);
  });

  it('a claim whose resume fails (a full disk) retries with the reason and keeps the progress', async () => {
    const rec = w.recordings();
    await rec.ingest(await w.record([file('full', 'MP4', 200_000)]));
    w.em.downloads.add({ fileId: 'full', kind: 'truncate', afterBytes: 50_000 });
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    const before = await row();
    expect(before).toMatchObject({ bytesStored: 50_000 });
    await w.clock.advance(60_000);
    const full: RecordingStore = {
      ...real,
      copyPartial: () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })),
    };
    expect(await w.recordings({ store: full }).runOnce()).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    expect(await row()).toMatchObject({
      state: 'pending',
      attempts: 2,
      leaseToken: null,
      bytesStored: 50_000,
      storageKey: before?.storageKey,
      lastError: expect.stringMatching(/could not resume .*50000 bytes.*ENOSPC: no space left on device/),
    });
    expect(await w.recordings({ store: full }).runOnce()).toEqual({ claimed: 0, outcomes: {} }); // backoff, not a lease later
    await w.clock.advance(120_000);
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    expect(fileSteps('full').map((s) => s.range)).toEqual([null, 'bytes=50000-']);
  });

  it('a resume that fails on the last attempt fails the file for good', async () => {
    await w.recordings().ingest(await w.record([file('last', 'MP4', 10_000)]));
    await w.database.db.updateTable('recordings').set({ attempts: 2, storage_key: `${keyOf('last')}.0123456789abcdef`, bytes_stored: 5_000 }).execute();
    const full: RecordingStore = { ...real, copyPartial: () => Promise.reject(new Error('EACCES: permission denied, open')) };
    expect(await w.recordings({ store: full }).runOnce()).toEqual({ claimed: 1, outcomes: { failed: 1 } });
    expect(await row()).toMatchObject({ state: 'failed', attempts: 3, lastError: expect.stringMatching(/^gave up after 3 attempts: could not resume .*EACCES/) });
  });

  it('fails a file whose attempts are used up when it is claimed again after a crash, with a reason to act on', async () => {
    await w.recordings().ingest(await w.record([file('dies', 'MP4', 10_000)]));
    // Its third and last attempt (retry.attempts: 3) died with the process: downloading, lease running out.
    const lease = new Date(w.clock.now().getTime() + LEASE_MS);
    await w.database.db
      .updateTable('recordings')
      .set({ state: 'downloading', attempts: 3, lease_owner: 'dead-host#1', lease_expires_at: lease, last_error: 'download answered HTTP 500' })
      .execute();
    await w.clock.set(new Date(lease.getTime() + 1));
    expect(await w.recordings().runOnce()).toEqual({ claimed: 1, outcomes: { failed: 1 } });
    expect(await row()).toMatchObject({
      state: 'failed',
      attempts: 3,
      leaseToken: null,
      availableAt: null,
      lastError: expect.stringMatching(/^gave up after 3 attempts \(recordings\.retry\.attempts: 3\); the last one left no outcome.*crashes.*recording \d+; last error before it: download answered HTTP 500$/),
    });
    expect(fileSteps('dies')).toEqual([]);
    await w.clock.advance(LEASE_MS + 1);
    expect(await w.recordings().runOnce()).toEqual({ claimed: 0, outcomes: {} }); // not re-claimed every lease
  });

  it('stores a file put in place by an attempt that then died, even when its attempts are used up', async () => {
    await w.recordings().ingest(await w.record([file('kept', 'MP4', SIZE)]));
    const served = w.em.recordingFile('kept')?.bytes ?? Buffer.alloc(0);
    const staged = `${keyOf('kept')}.0123456789abcdef`;
    await real.append(staged, 0, (async function* () {
      yield served;
    })());
    expect(await real.commit(staged, keyOf('kept'), SIZE)).toBe('committed');
    const lease = new Date(w.clock.now().getTime() + LEASE_MS);
    await w.database.db.updateTable('recordings').set({ state: 'downloading', attempts: 3, lease_owner: 'dead-host#1', lease_expires_at: lease }).execute();
    await w.clock.set(new Date(lease.getTime() + 1));
    expect(await w.recordings().runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    expect(await row()).toMatchObject({ state: 'stored', checksumSha256: sha(served) });
    expect(fileSteps('kept')).toEqual([]);
    expect((await replay()).status).toBe(200);
  });
});
