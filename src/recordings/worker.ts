import { randomUUID } from 'node:crypto';
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
import { storageKeyFor } from './parse.ts';
import { DOWNLOAD_TOKEN, recordingsOfSchedule, renewRecordingLease, scheduleAccountId, settleRecording, unsettleStored, type RecordingRow } from './rows.ts';
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

/**
 * Downloads one claimed file and records the outcome, fenced on the claim's token. The claim writes
 * a partial of its own (see holdLease for the lease), resuming from a copy of its predecessor's.
 * It commits (renames into place) only after the fenced settle succeeded: a worker that lost its
 * lease can never put its bytes at the final key.
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
  const lease = holdLease({
    db,
    clock,
    token,
    leaseMs: cfg.lease.ms,
    progress: async () => ({ partial, bytes: await store.partialSize(partial) }),
    abort: (reason) => controller.abort(reason),
  });
  let result: DownloadResult;
  try {
    if (!controller.signal.aborted && !(await resume(deps, row, partial, token))) controller.abort(new Error('lease lost: another worker took this file over'));
    const auths = controller.signal.aborted ? { list: [], problems: [] } : await authsFor(deps, row);
    result = await downloadToStore(store, clock, cfg.downloadTimeout.ms, {
      url: row.downloadUrl ?? '',
      partial,
      fileType: row.fileType,
      expectedSize: row.fileSize,
      auths: auths.list,
      signal: controller.signal,
      onBytes: (n) => deps.metrics?.bytes.inc(n),
    });
    if (!result.ok && auths.problems.length) result = { ...result, reason: `${result.reason} (${auths.problems.join('; ')})` };
  } finally {
    lease.release();
    stopping.removeEventListener('abort', onStop);
  }
  let outcome: Outcome;
  if (result.ok) {
    outcome = await commit(deps, row, { partial, key, token }, result);
  } else if (stopping.aborted) {
    // Shutdown: handed back without counting the attempt, and with the progress for the next one.
    await settleRecording(db, row.id, token, { state: 'pending', attempts: row.attempts - 1, available_at: clock.now(), bytes_stored: result.bytesStored, storage_key: partial, updated_at: clock.now() });
    outcome = 'lost';
  } else {
    outcome = await settleFailure(deps, row, token, { reason: result.reason, bytes: result.bytesStored, partial });
  }
  deps.metrics?.downloads.inc({ outcome });
  deps.metrics?.downloadSeconds.observe({ outcome }, (performance.now() - started) / 1000);
  if ((outcome === 'stored' || outcome === 'failed') && row.scheduleId !== null) await announce(deps, row, outcome);
  return outcome;
}

/**
 * A claim that took over another's (an expired lease, or a retry) starts its own partial from a copy
 * of the bytes the database vouches for, records that, and only then drops the old partial. It never
 * writes into the old one: its writer may still be alive. False when the lease is already lost.
 */
async function resume(deps: WorkerDeps, row: RecordingRow, partial: string, token: string): Promise<boolean> {
  const from = row.storageKey;
  if (!from || from === partial || row.bytesStored <= 0) return true;
  const bytes = await deps.store.copyPartial(from, partial, row.bytesStored);
  const held = await renewRecordingLease(deps.db, deps.clock, token, deps.config.current().recordings.lease.ms, { partial, bytes });
  if (held) await deps.store.discardPartial(from);
  return held;
}

/** Settle first (fenced), then rename: the rename happens only for the lease holder. */
async function commit(deps: WorkerDeps, row: RecordingRow, at: { partial: string; key: string; token: string }, result: Extract<DownloadResult, { ok: true }>): Promise<Outcome> {
  const { db, clock, store, logger } = deps;
  const onDisk = await store.partialSize(at.partial);
  if (onDisk !== result.size) return settleFailure(deps, row, at.token, { reason: `the partial has ${onDisk} bytes where ${result.size} were downloaded`, bytes: 0, partial: at.partial, discard: true });
  const now = clock.now();
  const held = await settleRecording(db, row.id, at.token, {
    state: 'stored',
    storage_key: at.key,
    checksum_sha256: result.sha256,
    content_type: result.contentType,
    bytes_stored: result.size,
    file_size: row.fileSize ?? result.size,
    stored_at: now,
    last_error: null,
    updated_at: now,
  });
  if (!held) return 'lost';
  try {
    await store.commit(at.partial, at.key, result.size);
  } catch (error) {
    // Stored for a moment in the database only (the replay route said 404 meanwhile): back to pending.
    const reason = `could not put the file in place: ${coerceError(error).message}`;
    const back = await unsettleStored(db, row.id, result.sha256, { last_error: reason, storage_key: at.partial, available_at: backoff(deps, row), updated_at: clock.now() });
    logger.error({ err: coerceError(error), recording: row.id, back }, 'recording settled but not committed; will retry');
    return 'retry';
  }
  // Partials of claims that lost their lease are of no use now.
  for (const stale of await store.partialsOf(at.key).catch(() => [])) await store.discardPartial(stale).catch(() => undefined);
  logger.info({ recording: row.id, fileType: row.fileType, bytes: result.size, resumedFrom: result.resumedFrom }, 'recording stored');
  return 'stored';
}

async function settleFailure(deps: WorkerDeps, row: RecordingRow, token: string, f: { reason: string; bytes: number; partial: string; discard?: boolean }): Promise<Outcome> {
  const cfg = deps.config.current().recordings;
  const now = deps.clock.now();
  const final = row.attempts >= cfg.retry.attempts;
  if (f.discard) await deps.store.discardPartial(f.partial);
  const held = await settleRecording(deps.db, row.id, token, {
    state: final ? 'failed' : 'pending',
    last_error: final ? `gave up after ${row.attempts} attempts: ${f.reason}` : f.reason,
    bytes_stored: f.bytes,
    storage_key: f.partial,
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
  const accountId = row.zoomAccountId ?? (row.scheduleId === null ? null : await scheduleAccountId(deps.db, row.scheduleId));
  if (accountId !== null) {
    try {
      const creds = await readZoomCredentials(deps.db, deps.box, accountId);
      const token = await deps.client.accessToken(creds);
      list.push({ kind: 'bearer', token, onRefused: () => deps.client.invalidateToken(creds, token) });
    } catch (error) {
      problems.push(`no S2S token: ${coerceError(error).message}`);
    }
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
