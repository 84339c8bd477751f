import { sql, type Insertable, type Selectable, type Updateable } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { dbNow } from '../db/db-clock.ts';
import { toDate, toOptionalDate } from '../db/row.ts';
import type { RecordingsTable, RecordingState } from '../db/tables.ts';
import { conflict, notFound } from '../errors.ts';

/** One recording file row, as the worker and the replay route see it. */
export interface RecordingRow {
  id: number;
  scheduleId: number | null;
  zoomAccountId: number | null;
  meetingId: string;
  meetingUuid: string;
  fileId: string;
  fileType: string;
  fileExtension: string | null;
  fileSize: number | null;
  state: RecordingState;
  attempts: number;
  downloadUrl: string | null;
  /** Encrypted (purpose DOWNLOAD_TOKEN). */
  downloadToken: string | null;
  downloadTokenExpiresAt: Date | null;
  bytesStored: number;
  /** Stored: the object's key. Before: the partial holding the first bytesStored bytes (a claim's own). */
  storageKey: string | null;
  checksumSha256: string | null;
  contentType: string | null;
  lastError: string | null;
  availableAt: Date | null;
  storedAt: Date | null;
  /** The claim's fencing token (lease_owner). */
  leaseToken: string | null;
}

export const DOWNLOAD_TOKEN = 'recordings.download_token';

export function toRecordingRow(r: Selectable<RecordingsTable>): RecordingRow {
  return {
    id: r.id,
    scheduleId: r.schedule_id,
    zoomAccountId: r.zoom_account_id,
    meetingId: r.meeting_id,
    meetingUuid: r.meeting_uuid,
    fileId: r.file_id,
    fileType: r.file_type,
    fileExtension: r.file_extension,
    fileSize: r.file_size === null ? null : Number(r.file_size),
    state: r.state,
    attempts: r.attempts,
    downloadUrl: r.download_url,
    downloadToken: r.download_token,
    downloadTokenExpiresAt: toOptionalDate(r.download_token_expires_at),
    bytesStored: Number(r.bytes_stored),
    storageKey: r.storage_key,
    checksumSha256: r.checksum_sha256,
    contentType: r.content_type,
    lastError: r.last_error,
    availableAt: toOptionalDate(r.available_at),
    storedAt: toOptionalDate(r.stored_at),
    leaseToken: r.lease_owner,
  };
}

/** The host time a class reserved (its scheduled time when that is not known): its meeting instance ran then. */
export interface HostWindow {
  from: Date;
  to: Date;
}

function hostWindowOf(r: { starts_at: Date | string; ends_at: Date | string; host_window_start: Date | string | null; host_window_end: Date | string | null }): HostWindow {
  return { from: toDate(r.host_window_start ?? r.starts_at), to: toDate(r.host_window_end ?? r.ends_at) };
}

/** The schedule that owns a Zoom meeting id, with the Zoom account id of its host and its host window. */
export async function scheduleOfMeeting(db: Db, meetingId: string): Promise<({ id: number; zoomAccountId: number | null; accountId: string | null; endedEmpty: boolean } & HostWindow) | undefined> {
  const row = await db
    .selectFrom('schedules')
    .leftJoin('zoom_accounts', 'zoom_accounts.id', 'schedules.meeting_account_id')
    .select(['schedules.id', 'schedules.meeting_account_id', 'schedules.meeting_state', 'zoom_accounts.account_id', 'schedules.starts_at', 'schedules.ends_at', 'schedules.host_window_start', 'schedules.host_window_end'])
    .where('schedules.meeting_id', '=', meetingId)
    .orderBy('schedules.id', 'desc')
    .executeTakeFirst();
  return row && { id: row.id, zoomAccountId: row.meeting_account_id, accountId: row.account_id, endedEmpty: row.meeting_state === 'ended_empty', ...hostWindowOf(row) };
}

export async function scheduleAccountId(db: Db, scheduleId: number): Promise<number | null> {
  const row = await db.selectFrom('schedules').select('meeting_account_id').where('id', '=', scheduleId).executeTakeFirst();
  return row?.meeting_account_id ?? null;
}

export async function recordingByFileId(db: Db, fileId: string): Promise<RecordingRow | undefined> {
  const row = await db.selectFrom('recordings').selectAll().where('file_id', '=', fileId).executeTakeFirst();
  return row && toRecordingRow(row);
}

export async function recordingById(db: Db, id: number): Promise<RecordingRow | undefined> {
  const row = await db.selectFrom('recordings').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toRecordingRow(row);
}

export type NewRecordingValues = Omit<Insertable<RecordingsTable>, 'id' | 'bytes_stored' | 'attempts' | 'state' | 'lease_owner' | 'lease_expires_at' | 'stored_at' | 'storage_key' | 'checksum_sha256' | 'content_type' | 'last_error'>;

/** Inserts a new pending file; false when the file id is already known (a webhook and the sweep may race). */
export async function insertRecording(db: Db, values: NewRecordingValues): Promise<boolean> {
  const row = await db
    .insertInto('recordings')
    .values({ ...values, state: 'pending', attempts: 0, bytes_stored: 0 })
    .onConflict((oc) => oc.column('file_id').doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Fresh URL and token for a file not stored yet; a stored one is never touched. */
export async function refreshRecording(db: Db, id: number, fields: Updateable<RecordingsTable>): Promise<boolean> {
  const result = await db.updateTable('recordings').set(fields).where('id', '=', id).where('state', '<>', 'stored').executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Claims due downloads with a lease: pending ones whose time has come, and downloading ones whose
 * worker died (lease expired). PostgreSQL skips rows another replica is claiming (SKIP LOCKED).
 */
export async function claimRecordings(db: Db, clock: Clock, o: { token: string; leaseMs: number; limit: number }): Promise<RecordingRow[]> {
  if (o.limit <= 0) return [];
  const now = dbNow(db, clock);
  const postgres = dialectOf(db) === 'postgres';
  const rows = await db
    .with('due', (qb) => {
      const pick = qb
        .selectFrom('recordings')
        .select('id')
        .where((eb) =>
          eb.or([
            eb.and([eb('state', '=', 'pending'), eb.or([eb('available_at', 'is', null), eb('available_at', '<=', now)])]),
            eb.and([eb('state', '=', 'downloading'), eb('lease_expires_at', '<', now)]),
          ]),
        )
        .orderBy('available_at')
        .orderBy('id')
        .limit(o.limit);
      return postgres ? pick.forUpdate().skipLocked() : pick;
    })
    .updateTable('recordings')
    .set((eb) => ({ state: 'downloading', lease_owner: o.token, lease_expires_at: dbNow(db, clock, o.leaseMs), attempts: eb('attempts', '+', 1), updated_at: clock.now() }))
    .where('id', 'in', (eb) => eb.selectFrom('due').select('id'))
    .returningAll()
    .execute();
  return rows.map(toRecordingRow).sort((a, b) => a.id - b.id);
}

/** How far a claim's own partial has got: the bytes a successor may copy from it. */
export interface Progress {
  partial: string;
  bytes: number;
}

/** Extends the lease while the claim is still ours (fencing), and records the partial's progress. */
export async function renewRecordingLease(db: Db, clock: Clock, token: string, leaseMs: number, progress?: Progress): Promise<boolean> {
  const result = await db
    .updateTable('recordings')
    .set({ lease_expires_at: dbNow(db, clock, leaseMs), ...(progress ? { storage_key: progress.partial, bytes_stored: progress.bytes } : {}) })
    .where('lease_owner', '=', token)
    .where('state', '=', 'downloading')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Records an attempt's end, only while the claim is still ours (fencing). Releases the lease. */
export async function settleRecording(db: Db, id: number, token: string, fields: Updateable<RecordingsTable>): Promise<boolean> {
  const result = await db
    .updateTable('recordings')
    .set({ ...fields, lease_owner: null, lease_expires_at: null })
    .where('id', '=', id)
    .where('lease_owner', '=', token)
    .where('state', '=', 'downloading')
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Shutdown: this worker's unfinished claims (every token of `owner`, or one exact `token`) go back
 * at once; the interrupted attempt does not count.
 */
export async function releaseRecordingClaims(db: Db, clock: Clock, claims: { owner: string } | { token: string }): Promise<number> {
  const update = db
    .updateTable('recordings')
    .set((eb) => ({ state: 'pending', lease_owner: null, lease_expires_at: null, attempts: eb('attempts', '-', 1), available_at: clock.now() }))
    .where('state', '=', 'downloading');
  const result = await ('token' in claims ? update.where('lease_owner', '=', claims.token) : update.where('lease_owner', 'like', `${claims.owner}#%`)).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export async function recordingsOfSchedule(db: Db, scheduleId: number): Promise<RecordingRow[]> {
  const rows = await db.selectFrom('recordings').selectAll().where('schedule_id', '=', scheduleId).orderBy('id').execute();
  return rows.map(toRecordingRow);
}

/** When the next pending download becomes due (to sleep until then), if any. */
export async function nextRecordingDue(db: Db): Promise<Date | null> {
  const row = await db
    .selectFrom('recordings')
    .select((eb) => eb.fn.min('available_at').as('next'))
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return row?.next ? toDate(row.next) : null;
}

export interface SweepCandidate extends HostWindow {
  scheduleId: number;
  zoomAccountId: number;
  meetingId: string;
}

/**
 * Classes on licensed hosts (Basic hosts cannot record to the cloud) whose meeting ended within the
 * lookback and that have no recording rows yet: their recording.completed may have been lost.
 * The end is live_ended_at when known, else the scheduled end (while not seen running).
 * Classes never asked come first, then the longest unasked; none asked since `askedBefore`, so a
 * backlog of classes without a recording cannot starve newer ones.
 */
export async function sweepCandidates(db: Db, o: { now: Date; since: Date; askedBefore: Date; limit: number }): Promise<SweepCandidate[]> {
  const rows = await db
    .selectFrom('schedules')
    .innerJoin('zoom_accounts', 'zoom_accounts.id', 'schedules.meeting_account_id')
    .select(['schedules.id', 'schedules.meeting_account_id', 'schedules.meeting_id', 'schedules.starts_at', 'schedules.ends_at', 'schedules.host_window_start', 'schedules.host_window_end'])
    .where('schedules.meeting_id', 'is not', null)
    .where('schedules.cancelled', '=', false)
    // Ended early as empty: deleted at Zoom, and a recording of an empty room is not worth keeping.
    .where('schedules.meeting_state', '<>', 'ended_empty')
    .where('zoom_accounts.plan', '=', 'licensed')
    .where((eb) =>
      eb.or([
        eb.and([eb('schedules.live_ended_at', '>=', o.since), eb('schedules.live_ended_at', '<=', o.now)]),
        eb.and([
          eb('schedules.live_ended_at', 'is', null),
          eb.or([eb('schedules.live_status', 'is', null), eb('schedules.live_status', '<>', 'started')]),
          eb('schedules.ends_at', '>=', o.since),
          eb('schedules.ends_at', '<=', o.now),
        ]),
      ]),
    )
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('recordings').select('recordings.id').whereRef('recordings.schedule_id', '=', 'schedules.id'))))
    .where((eb) => eb.or([eb('schedules.recording_swept_at', 'is', null), eb('schedules.recording_swept_at', '<=', o.askedBefore)]))
    // NULLS FIRST spelled out: PostgreSQL sorts nulls last by default, SQLite first.
    .orderBy(sql`case when schedules.recording_swept_at is null then 0 else 1 end`)
    .orderBy('schedules.recording_swept_at')
    .orderBy('schedules.ends_at')
    .limit(o.limit)
    .execute();
  return rows.map((r) => ({
    scheduleId: r.id,
    zoomAccountId: r.meeting_account_id ?? 0,
    meetingId: r.meeting_id ?? '',
    ...hostWindowOf(r),
  }));
}

/** The sweep asked Zoom about this class (whatever the answer): not again before the next interval. */
export async function markSwept(db: Db, scheduleId: number, at: Date): Promise<void> {
  await db.updateTable('schedules').set({ recording_swept_at: at }).where('id', '=', scheduleId).execute();
}

/**
 * An operator sends a failed recording back to be downloaded: pending now, its attempts from 0 (what
 * was already downloaded is resumed), the earlier failure kept in its reason. Anything but a failed
 * recording is refused with the reason (409).
 */
export async function retryRecording(db: Db, now: Date, id: number): Promise<void> {
  const row = await db.selectFrom('recordings').select(['state', 'last_error']).where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(`recording ${id} not found`);
  if (row.state !== 'failed') throw conflict(`recording ${id} is ${row.state}: only a failed recording can be downloaded again`);
  const updated = await db
    .updateTable('recordings')
    .set({ state: 'pending', attempts: 0, available_at: now, last_error: `sent back to download by an operator (before: ${row.last_error ?? 'failed'})`, updated_at: now })
    .where('id', '=', id)
    .where('state', '=', 'failed')
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) throw conflict(`recording ${id} changed meanwhile: look again`);
}
