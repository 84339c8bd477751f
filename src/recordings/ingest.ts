import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { parseRecordingMeeting } from './parse.ts';
import { DOWNLOAD_TOKEN, insertRecording, recordingByFileId, refreshRecording, scheduleOfMeeting } from './rows.ts';

export interface IngestDeps {
  clock: Clock;
  box: SecretBox;
  config: ConfigStore;
}

export interface IngestInput {
  /** The Zoom account id the event (or API answer) came from. */
  accountId: string;
  /** payload.object of recording.completed, or the body of GET /meetings/{id}/recordings. */
  object: unknown;
  /** The webhook's download_token (valid 24 h); null from the API. */
  downloadToken: string | null;
}

/** Zoom: the download_token "only lasts for 24 hours after generation". */
export const DOWNLOAD_TOKEN_TTL_MS = 24 * 3_600_000;

/**
 * Records the files of one recorded meeting for download. New files become pending (due now);
 * files not stored yet get the fresh download URL and token (a redelivery or the sweep may bring a
 * newer one; a failed file is given another round); stored files are left alone.
 * Returns what it did, as text for the event log.
 */
export async function ingestRecordingMeeting(db: Db, deps: IngestDeps, input: IngestInput): Promise<string> {
  const cfg = deps.config.current().recordings;
  const parsed = parseRecordingMeeting(input.object, cfg.fileTypes);
  if (!parsed.ok) return `ignored: ${parsed.reason}`;
  const { meeting } = parsed;
  const schedule = await scheduleOfMeeting(db, meeting.meetingId);
  if (!schedule) return 'ignored: not our meeting';
  if (schedule.accountId && input.accountId && schedule.accountId !== input.accountId) {
    return `ignored: meeting ${meeting.meetingId} belongs to another Zoom account than ${input.accountId}`;
  }
  // Like the sweep: a room ended early because no student came holds nothing worth keeping.
  if (schedule.endedEmpty) return 'ignored: the class was ended early as empty';
  if (meeting.files.length === 0) return `ignored: no recording files to keep${parsed.skipped.length ? ` (${parsed.skipped.join('; ')})` : ''}`;

  const now = deps.clock.now();
  const token = input.downloadToken
    ? { download_token: deps.box.encrypt(input.downloadToken, DOWNLOAD_TOKEN), download_token_expires_at: new Date(now.getTime() + DOWNLOAD_TOKEN_TTL_MS) }
    : {};
  const counts = { added: 0, refreshed: 0, stored: 0 };
  for (const f of meeting.files) {
    const fields = {
      download_url: f.downloadUrl,
      file_size: f.fileSize,
      file_extension: f.fileExtension,
      recording_type: f.recordingType,
      recording_start: f.recordingStart,
      recording_end: f.recordingEnd,
      updated_at: now,
      ...token,
    };
    const added = await insertRecording(db, {
      schedule_id: schedule.id,
      zoom_account_id: schedule.zoomAccountId,
      meeting_id: meeting.meetingId,
      meeting_uuid: meeting.meetingUuid,
      file_id: f.fileId,
      file_type: f.fileType,
      download_token: null,
      download_token_expires_at: null,
      available_at: now,
      created_at: now,
      ...fields,
    });
    if (added) {
      counts.added++;
      continue;
    }
    const existing = await recordingByFileId(db, f.fileId);
    if (!existing || existing.state === 'stored') {
      counts.stored++;
      continue;
    }
    const revive = existing.state === 'failed' ? { state: 'pending' as const, attempts: 0, available_at: now } : {};
    if (await refreshRecording(db, existing.id, { ...fields, ...revive })) counts.refreshed++;
    else counts.stored++;
  }
  return `recordings: ${counts.added} new, ${counts.refreshed} refreshed, ${counts.stored} already stored`;
}
