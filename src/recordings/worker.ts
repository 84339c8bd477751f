import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { retryDelay } from '../retry.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { readZoomCredentials } from '../zoom/accounts.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { downloadToStore, type DownloadAuth, type DownloadResult } from './download.ts';
import { holdLease } from './lease.ts';
import type { RecordingMetrics } from './metrics.ts';
import { contentTypeFor, storageKeyFor } from './parse.ts';
import { DOWNLOAD_TOKEN, recordingsOfSchedule, renewRecordingLease, scheduleAccountId, settleRecording, type Progress, type RecordingRow } from './rows.ts';
import { replayCandidate } from './playable.ts';
import { partialName, type RecordingStore } from './store.ts';

/** Told when a schedule's first playable file (MP4, else M4A) is stored: time to offer the replay link. */
export type OnStored = (recording: { id: number; scheduleId: number; fileType: string }) => Promise<void> | void;

export interface WorkerDeps {
  db: Db;
  box: SecretBox;
  clock: Clock;
  config: ConfigStore;
  client: ZoomClient;
  store: RecordingStore;
  logger: Logger;
  /** Prefix of this worker's lease tokens (default: random). */
  owner: string;
  metrics?: RecordingMetrics | undefined;
  onStored?: OnStored | undefined;
  random?: (() => number) | undefined;
}

export type Outcome = 'stored' | 'retry' | 'failed' | 'lost';

/** A complete object at its final key: what a stored row says about it. */
interface StoredObject {
  size: number;
  sha256: string;
  contentType: string;
  resumedFrom: number;
}

/** How a claim's work before the commit went. */
type Step =
  /** An earlier claim put the file in place and died before settling: nothing to download. */
  | { kind: 'present'; object: StoredObject }
  | { kind: 'downloaded'; result: Extract<DownloadResult, { ok: true }> }
  /** `progress`: the bytes the next attempt resumes from. `final`: the reason this ends the file for good. */
  | { kind: 'failed'; reason: string; progress: Progress; final?: string };

/**
 * Downloads one claimed file and records the outcome, fenced on the claim's token. The claim writes
 * a partial of its own (see holdLease for the lease), resuming from a copy of its predecessor's.
 * The file is put in place before the fenced settle says 'stored', so a stored row always has its
 * file; a claim that dies between the two leaves the file in place, and the next claim adopts it.
 */
export async function downloadClaimed(deps: WorkerDeps, row: RecordingRow, stopping: AbortSignal): Promise<Outcome> {
  const { db, clock, config, store } = deps;
  const cfg = config.current().recordings;
  const token = row.leaseToken ?? '';
  const key = storageKeyFor(row.meetingId, row.fileId, row.fileType, row.fileExtension);
  const partial = partialName(key, token);
  const started = performance.now();
  const controller = new AbortController();
  const onStop = (): void => controller.abort(new Error('stopping'));
  // A claim that lands after stop() began must not start a download (the listener would never fire).
  if (stopping.aborted) onStop();
  else stopping.addEventListener('abort', onStop, { once: true });
  const at = { key, partial, token, resumed: false };
  const lease = holdLease({
    db,
    clock,
    token,
    leaseMs: cfg.lease.ms,
    // Until this claim's partial holds the resumed bytes, the predecessor's stays the one to resume from.
    progress: async () => (at.resumed ? { partial, bytes: await store.partialSize(partial) } : vouched(row, partial)),
    abort: (reason) => controller.abort(reason),
  });
  let step: Step;
  try {
    step = await attempt(deps, row, at, controller.signal);
  } finally {
    lease.release();
    stopping.removeEventListener('abort', onStop);
  }
  let outcome: Outcome;
  if (step.kind === 'present') {
    outcome = await settleStored(deps, row, token, key, step.object);
  } else if (step.kind === 'downloaded') {
    outcome = await commit(deps, row, { partial, key, token }, step.result);
  } else if (stopping.aborted) {
    // Shutdown: handed back without counting the attempt, and with the progress for the next one.
    await settleRecording(db, row.id, token, { state: 'pending', attempts: row.attempts - 1, available_at: clock.now(), bytes_stored: step.progress.bytes, storage_key: step.progress.partial, updated_at: clock.now() });
    outcome = 'lost';
  } else {
    outcome = await settleFailure(deps, row, token, step);
  }
  deps.metrics?.downloads.inc({ outcome });
  deps.metrics?.downloadSeconds.observe({ outcome }, (performance.now() - started) / 1000);
  if ((outcome === 'stored' || outcome === 'failed') && row.scheduleId !== null) await announce(deps, row, outcome);
  return outcome;
}

/**
 * Everything up to the commit. Never throws: a failure anywhere (a full disk while resuming, a
 * broken store) is an attempt that failed, so it counts towards the cap instead of leaving the row
 * to be re-claimed every lease.
 */
async function attempt(deps: WorkerDeps, row: RecordingRow, at: { key: string; partial: string; token: string; resumed: boolean }, signal: AbortSignal): Promise<Step> {
  const cfg = deps.config.current().recordings;
  let progress = vouched(row, at.partial);
  const failed = (reason: string, final?: string): Step => ({ kind: 'failed', reason, progress, ...(final ? { final } : {}) });
  if (signal.aborted) return failed(coerceError(signal.reason).message);
  try {
    const present = await committedObject(deps, row, at.key, signal);
    if (present) return { kind: 'present', object: { ...present, contentType: row.contentType ?? contentTypeFor(row.fileType), resumedFrom: present.size } };
  } catch (error) {
    return failed(`could not check the store for the file: ${coerceError(error).message}`);
  }
  if (row.attempts > cfg.retry.attempts) {
    // Re-claimed after its last attempt left no outcome: the worker died on this file (or hung).
    const reason =
      `gave up after ${row.attempts - 1} attempts (recordings.retry.attempts: ${cfg.retry.attempts}); the last one left no outcome, ` +
      `as when its worker crashes, is killed or hangs mid-download: look in the logs for recording ${row.id}` +
      (row.lastError ? `; last error before it: ${row.lastError}` : '');
    return failed(reason, reason);
  }
  try {
    const resumed = await resume(deps, row, at.partial, at.token);
    if (resumed === null) return failed('lease lost: another worker took this file over');
    progress = { partial: at.partial, bytes: resumed };
    at.resumed = true;
  } catch (error) {
    // The predecessor's partial is kept until the copy is recorded: the next attempt copies again.
    await deps.store.discardPartial(at.partial).catch(() => undefined);
    return failed(`could not resume from the last attempt's ${row.bytesStored} bytes: ${coerceError(error).message}`);
  }
  if (signal.aborted) return failed(coerceError(signal.reason).message);
  const auths = await authsFor(deps, row);
  const result = await downloadToStore(deps.store, deps.clock, cfg.downloadTimeout.ms, {
    url: row.downloadUrl ?? '',
    partial: at.partial,
    fileType: row.fileType,
    expectedSize: row.fileSize,
    auths: auths.list,
    signal,
    onBytes: (n) => deps.metrics?.bytes.inc(n),
  });
  if (result.ok) return { kind: 'downloaded', result };
  progress = { partial: at.partial, bytes: result.bytesStored };
  return failed(auths.problems.length ? `${result.reason} (${auths.problems.join('; ')})` : result.reason);
}

/** The progress the claimed row vouches for (its predecessor's partial), before this claim's own takes over. */
function vouched(row: RecordingRow, partial: string): Progress {
  return row.storageKey ? { partial: row.storageKey, bytes: row.bytesStored } : { partial, bytes: 0 };
}

/**
 * A claim that took over another's (an expired lease, or a retry) starts its own partial from a copy
 * of the bytes the database vouches for, records that, and only then drops the old partial. It never
 * writes into the old one: its writer may still be alive. Returns the bytes its partial starts
 * with, or null when the lease is already lost.
 */
async function resume(deps: WorkerDeps, row: RecordingRow, partial: string, token: string): Promise<number | null> {
  const from = row.storageKey;
  if (!from || from === partial || row.bytesStored <= 0) return 0;
  const bytes = await deps.store.copyPartial(from, partial, row.bytesStored);
  const held = await renewRecordingLease(deps.db, deps.clock, token, deps.config.current().recordings.lease.ms, { partial, bytes });
  if (!held) return null;
  // Only tidying: a leftover is removed once the file is stored.
  await deps.store.discardPartial(from).catch(() => undefined);
  return bytes;
}

/**
 * The object at `key`, hashed, if there is one. Commit is atomic and follows the size check, so an
 * object is a complete download; one whose size is not Zoom's (the file changed since) is stale:
 * removed. The row is not stored (it is claimed), so nothing serves the object meanwhile.
 */
async function committedObject(deps: WorkerDeps, row: RecordingRow, key: string, signal?: AbortSignal): Promise<{ size: number; sha256: string } | null> {
  const size = await deps.store.size(key);
  if (size === null) return null;
  if (row.fileSize !== null && size !== row.fileSize) {
    deps.logger.warn({ recording: row.id, key, size, fileSize: row.fileSize }, 'a stale recording file is in place; removing it');
    await deps.store.delete(key);
    return null;
  }
  const hash = createHash('sha256');
  let read = 0;
  for await (const chunk of deps.store.read(key)) {
    // A large file takes a while: a lost lease or a stop ends the check (the stream is closed).
    if (signal?.aborted) throw coerceError(signal.reason);
    hash.update(chunk as Buffer);
    read += (chunk as Buffer).length;
  }
  if (read !== size) throw new Error(`read ${read} of the ${size} bytes of ${key}`);
  return { size, sha256: hash.digest('hex') };
}

/**
 * Puts the verified partial in place, then settles 'stored' (fenced). A lease check comes first, so
 * a worker that lost its lease normally never commits; one that loses it just after is harmless:
 * commit never replaces an object, and whoever settles records the hash of the object in place.
 */
async function commit(deps: WorkerDeps, row: RecordingRow, at: { partial: string; key: string; token: string }, result: Extract<DownloadResult, { ok: true }>): Promise<Outcome> {
  const { db, clock, store, logger, config } = deps;
  const whole: Progress = { partial: at.partial, bytes: result.size };
  let onDisk: number;
  try {
    onDisk = await store.partialSize(at.partial);
  } catch (error) {
    return settleFailure(deps, row, at.token, { reason: `could not read the downloaded file: ${coerceError(error).message}`, progress: whole });
  }
  if (onDisk !== result.size) return settleFailure(deps, row, at.token, { reason: `the partial has ${onDisk} bytes where ${result.size} were downloaded`, progress: { partial: at.partial, bytes: 0 }, discard: true });
  // Recording the whole partial: a crash before the commit costs the next claim a copy, not a download.
  if (!(await renewRecordingLease(db, clock, at.token, config.current().recordings.lease.ms, whole))) return 'lost';
  let object: StoredObject = result;
  try {
    if ((await store.commit(at.partial, at.key, result.size)) === 'exists') {
      // Another claim put it in place first (it lost its lease after its check, or died before settling).
      const present = await committedObject(deps, row, at.key);
      if (!present) throw new Error(`a stale file was at ${at.key} (removed)`);
      if (present.sha256 !== result.sha256) logger.warn({ recording: row.id, inPlace: present.sha256, downloaded: result.sha256 }, 'another claim put different bytes in place; keeping those');
      object = { ...result, ...present };
      await store.discardPartial(at.partial).catch(() => undefined);
    }
  } catch (error) {
    // The partial is kept whole: the next attempt commits it without downloading again.
    return settleFailure(deps, row, at.token, { reason: `could not put the file in place: ${coerceError(error).message}`, progress: whole });
  }
  return settleStored(deps, row, at.token, at.key, object);
}

/** Settles 'stored' (fenced) for a file already in place. */
async function settleStored(deps: WorkerDeps, row: RecordingRow, token: string, key: string, object: StoredObject): Promise<Outcome> {
  const { db, clock, store, logger } = deps;
  const now = clock.now();
  const held = await settleRecording(db, row.id, token, {
    state: 'stored',
    storage_key: key,
    checksum_sha256: object.sha256,
    content_type: object.contentType,
    bytes_stored: object.size,
    file_size: row.fileSize ?? object.size,
    stored_at: now,
    last_error: null,
    updated_at: now,
  });
  // Not ours any more: the file stays in place, and the claim holding the row adopts it.
  if (!held) return 'lost';
  // Partials of claims that lost their lease (or died) are of no use now.
  for (const stale of await store.partialsOf(key).catch(() => [])) await store.discardPartial(stale).catch(() => undefined);
  logger.info({ recording: row.id, fileType: row.fileType, bytes: object.size, resumedFrom: object.resumedFrom }, 'recording stored');
  return 'stored';
}

async function settleFailure(deps: WorkerDeps, row: RecordingRow, token: string, f: { reason: string; progress: Progress; discard?: boolean; final?: string }): Promise<Outcome> {
  const cfg = deps.config.current().recordings;
  const now = deps.clock.now();
  const final = f.final !== undefined || row.attempts >= cfg.retry.attempts;
  if (f.discard) await deps.store.discardPartial(f.progress.partial).catch(() => undefined);
  const held = await settleRecording(deps.db, row.id, token, {
    state: final ? 'failed' : 'pending',
    last_error: f.final ?? (final ? `gave up after ${row.attempts} attempts: ${f.reason}` : f.reason),
    // A give-up at claim time made no attempt of its own.
    ...(f.final !== undefined ? { attempts: row.attempts - 1 } : {}),
    bytes_stored: f.progress.bytes,
    storage_key: f.progress.partial,
    available_at: final ? null : backoff(deps, row),
    updated_at: now,
  });
  if (held) deps.logger.warn({ recording: row.id, fileType: row.fileType, attempt: row.attempts, reason: f.reason, final }, final ? 'recording download failed for good' : 'recording download failed; will retry');
  return !held ? 'lost' : final ? 'failed' : 'retry';
}

function backoff(deps: WorkerDeps, row: RecordingRow): Date {
  const cfg = deps.config.current().recordings;
  const delay = retryDelay({ baseDelayMs: cfg.retry.baseDelay.ms, maxDelayMs: cfg.retry.maxDelay.ms }, row.attempts, undefined, deps.random);
  return new Date(deps.clock.now().getTime() + delay);
}

/** The S2S access token as a Bearer header first (Zoom's advice), then the webhook's download_token while valid. */
async function authsFor(deps: WorkerDeps, row: RecordingRow): Promise<{ list: DownloadAuth[]; problems: string[] }> {
  const list: DownloadAuth[] = [];
  const problems: string[] = [];
  try {
    const accountId = row.zoomAccountId ?? (row.scheduleId === null ? null : await scheduleAccountId(deps.db, row.scheduleId));
    if (accountId !== null) {
      const creds = await readZoomCredentials(deps.db, deps.box, accountId);
      const token = await deps.client.accessToken(creds);
      list.push({ kind: 'bearer', token, onRefused: () => deps.client.invalidateToken(creds, token) });
    }
  } catch (error) {
    problems.push(`no S2S token: ${coerceError(error).message}`);
  }
  if (row.downloadToken && row.downloadTokenExpiresAt && row.downloadTokenExpiresAt.getTime() > deps.clock.now().getTime()) {
    try {
      list.push({ kind: 'query', token: deps.box.decrypt(row.downloadToken, DOWNLOAD_TOKEN) });
    } catch (error) {
      problems.push(coerceError(error).message);
    }
  }
  return { list, problems };
}

/** Calls onStored when this change made a file the schedule's replay choice. */
async function announce(deps: WorkerDeps, row: RecordingRow, outcome: 'stored' | 'failed'): Promise<void> {
  if (!deps.onStored || row.scheduleId === null) return;
  if (outcome === 'failed' && row.fileType !== 'MP4') return;
  if (outcome === 'stored' && row.fileType !== 'MP4' && row.fileType !== 'M4A') return;
  try {
    const choice = replayCandidate(await recordingsOfSchedule(deps.db, row.scheduleId));
    // Stored: only if it is this file. An MP4 that failed for good: the stored M4A becomes the choice.
    if (!choice || (outcome === 'stored' && choice.id !== row.id) || (outcome === 'failed' && choice.fileType !== 'M4A')) return;
    await deps.onStored({ id: choice.id, scheduleId: row.scheduleId, fileType: choice.fileType });
  } catch (error) {
    deps.logger.error({ err: coerceError(error), recording: row.id }, 'onStored failed');
  }
}

/** A claim token: the owner prefix (released together at shutdown) and a unique part (fencing). */
export function claimToken(owner: string): string {
  return `${owner}#${randomUUID()}`;
}
