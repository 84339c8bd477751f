import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { parseRecordingMeeting, type RecordingFileInfo } from './parse.ts';
import { DOWNLOAD_TOKEN, insertRecording, recordingByFileId, refreshRecording, scheduleOfMeeting, type HostWindow } from './rows.ts';

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
  // Each start of a meeting id is an instance with recordings of its own: the host trying the room
  // out before the class, or starting it again later, is not the class. As the sweep picks instances
  // (classInstances), only what was recorded within the class's host window is the class's.
  const { kept, outside } = filesInWindow(meeting.files, schedule);
  if (kept.length === 0) {
    return `ignored: instance ${meeting.meetingUuid} was recorded ${recordedSpan(outside)}, outside the host window ${schedule.from.toISOString()}–${schedule.to.toISOString()} of schedule ${schedule.id}`;
  }

  const now = deps.clock.now();
  const token = input.downloadToken
    ? { download_token: deps.box.encrypt(input.downloadToken, DOWNLOAD_TOKEN), download_token_expires_at: new Date(now.getTime() + DOWNLOAD_TOKEN_TTL_MS) }
    : {};
  const counts = { added: 0, refreshed: 0, stored: 0 };
  for (const f of kept) {
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
  return `recordings: ${counts.added} new, ${counts.refreshed} refreshed, ${counts.stored} already stored${outside.length ? `, ${outside.length} recorded outside the host window left out` : ''}`;
}

/**
 * Splits an instance's files by whether their recording time overlaps the window (ends included, as
 * classInstances does). A file without times is judged with its instance: kept when another file of it
 * is in the window, or when no file has times (nothing to tell by, so nothing is lost).
 */
export function filesInWindow<F extends Pick<RecordingFileInfo, 'recordingStart' | 'recordingEnd'>>(files: readonly F[], window: HostWindow): { kept: F[]; outside: F[] } {
  const inside = (f: F): boolean | undefined => {
    const start = f.recordingStart ?? f.recordingEnd;
    const end = f.recordingEnd ?? f.recordingStart;
    return start && end ? start.getTime() <= window.to.getTime() && end.getTime() >= window.from.getTime() : undefined;
  };
  const verdicts = files.map(inside);
  const untimed = verdicts.includes(true) || !verdicts.includes(false);
  return { kept: files.filter((_, i) => verdicts[i] ?? untimed), outside: files.filter((_, i) => verdicts[i] === false) };
}

/** When an instance's files were recorded, for a reason: first start to last end. */
function recordedSpan(files: readonly Pick<RecordingFileInfo, 'recordingStart' | 'recordingEnd'>[]): string {
  const times = files.flatMap((f) => [f.recordingStart, f.recordingEnd]).filter((d): d is Date => d !== null).map((d) => d.getTime());
  return times.length ? `${new Date(Math.min(...times)).toISOString()}–${new Date(Math.max(...times)).toISOString()}` : 'at an unknown time';
}
