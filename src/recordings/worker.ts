import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { retryDelay } from '../retry.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { readZoomCredentials } from '../zoom/accounts.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { downloadToStore, type DownloadAuth } from './download.ts';
import type { RecordingMetrics } from './metrics.ts';
import { storageKeyFor } from './parse.ts';
import { DOWNLOAD_TOKEN, recordingsOfSchedule, renewRecordingLease, scheduleAccountId, settleRecording, type RecordingRow } from './rows.ts';
import { replayCandidate } from './playable.ts';
import type { RecordingStore } from './store.ts';

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
 * Downloads one claimed file and records the outcome, fenced on the claim's token. The lease is
 * renewed on a timer for as long as the attempt runs (its deadline bounds that); losing the lease
 * aborts the attempt, so two workers never write one partial.
 */
export async function downloadClaimed(deps: WorkerDeps, row: RecordingRow, stopping: AbortSignal): Promise<Outcome> {
  const { db, clock, config, logger } = deps;
  const cfg = config.current().recordings;
  const token = row.leaseToken ?? '';
  const key = storageKeyFor(row.meetingId, row.fileId, row.fileType, row.fileExtension);
  const started = performance.now();
  const controller = new AbortController();
  const onStop = (): void => controller.abort(new Error('stopping'));
  stopping.addEventListener('abort', onStop, { once: true });
  let renewal: TimerHandle | undefined;
  const renew = (): void => {
    renewal = clock.setTimeout(() => {
      void renewRecordingLease(db, clock, token, cfg.lease.ms)
        .then((held) => {
          if (!held) controller.abort(new Error('lease lost: another worker took this file over'));
        })
        .catch((error: unknown) => logger.warn({ err: coerceError(error), recording: row.id }, 'could not renew a recording lease'))
        .finally(() => {
          if (renewal) renew();
        });
    }, cfg.lease.ms / 3);
  };
  renew();
  let result;
  try {
    const auths = await authsFor(deps, row);
    result = await downloadToStore(deps.store, clock, cfg.downloadTimeout.ms, {
      url: row.downloadUrl ?? '',
      key,
      fileType: row.fileType,
      expectedSize: row.fileSize,
      auths: auths.list,
      signal: controller.signal,
      onBytes: (n) => deps.metrics?.bytes.inc(n),
    });
    if (!result.ok && auths.problems.length) result = { ...result, reason: `${result.reason} (${auths.problems.join('; ')})` };
  } finally {
    if (renewal) clock.clearTimeout(renewal);
    renewal = undefined;
    stopping.removeEventListener('abort', onStop);
  }
  const now = clock.now();
  let outcome: Outcome;
  if (result.ok) {
    const held = await settleRecording(db, row.id, token, {
      state: 'stored',
      storage_key: key,
      checksum_sha256: result.sha256,
      content_type: result.contentType,
      bytes_stored: result.size,
      file_size: row.fileSize ?? result.size,
      stored_at: now,
      last_error: null,
      updated_at: now,
    });
    outcome = held ? 'stored' : 'lost';
    if (held) logger.info({ recording: row.id, fileType: row.fileType, bytes: result.size, resumedFrom: result.resumedFrom }, 'recording stored');
  } else if (stopping.aborted) {
    // Shutdown: releaseRecordingClaims hands the row back without counting the attempt.
    outcome = 'lost';
  } else {
    const final = row.attempts >= cfg.retry.attempts;
    const delay = retryDelay({ baseDelayMs: cfg.retry.baseDelay.ms, maxDelayMs: cfg.retry.maxDelay.ms }, row.attempts, undefined, deps.random);
    const held = await settleRecording(db, row.id, token, {
      state: final ? 'failed' : 'pending',
      last_error: final ? `gave up after ${row.attempts} attempts: ${result.reason}` : result.reason,
      bytes_stored: result.bytesStored,
      available_at: final ? null : new Date(now.getTime() + delay),
      updated_at: now,
    });
    outcome = !held ? 'lost' : final ? 'failed' : 'retry';
    if (held) logger.warn({ recording: row.id, fileType: row.fileType, attempt: row.attempts, reason: result.reason, final }, final ? 'recording download failed for good' : 'recording download failed; will retry');
  }
  deps.metrics?.downloads.inc({ outcome });
  deps.metrics?.downloadSeconds.observe({ outcome }, (performance.now() - started) / 1000);
  if ((outcome === 'stored' || outcome === 'failed') && row.scheduleId !== null) await announce(deps, row, outcome);
  return outcome;
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
