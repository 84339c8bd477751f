import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * A Zoom recording meeting object, as `recording.completed` carries it (id: number) and as
 * GET /meetings/{id}/recordings returns it (id: number or string). Pure: no I/O.
 */
export interface RecordingMeeting {
  meetingId: string;
  meetingUuid: string;
  hostId: string | null;
  accountId: string | null;
  files: RecordingFileInfo[];
}

export interface RecordingFileInfo {
  /** Zoom's file id, or a stable key derived from the entry when Zoom gives none (CC, TIMELINE). */
  fileId: string;
  fileType: string;
  fileExtension: string | null;
  fileSize: number | null;
  downloadUrl: string;
  status: string | null;
  recordingType: string | null;
  recordingStart: Date | null;
  recordingEnd: Date | null;
}

const instant = z
  .string()
  .nullish()
  .transform((s) => {
    if (!s) return null;
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  });

const fileSchema = z.object({
  id: z.union([z.string(), z.number()]).nullish(),
  meeting_id: z.string().nullish(),
  file_type: z.string().nullish(),
  file_extension: z.string().nullish(),
  file_size: z.number().nonnegative().nullish(),
  download_url: z.string().nullish(),
  status: z.string().nullish(),
  recording_type: z.string().nullish(),
  recording_start: instant,
  recording_end: instant,
});

const meetingSchema = z.object({
  id: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]),
  uuid: z.string().min(1),
  host_id: z.string().nullish(),
  account_id: z.string().nullish(),
  recording_files: z.array(z.unknown()).nullish(),
});

export type ParseResult = { ok: true; meeting: RecordingMeeting; skipped: string[] } | { ok: false; reason: string };

/**
 * Parses the meeting and its files. Files that are malformed, have no download URL, or whose type
 * is not in `fileTypes` are left out and named in `skipped` (a bad entry must not lose the others).
 */
export function parseRecordingMeeting(raw: unknown, fileTypes: readonly string[]): ParseResult {
  const parsed = meetingSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: `not a recording meeting object: ${issue ? `${issue.path.join('.') || 'object'}: ${issue.message}` : 'invalid'}` };
  }
  const m = parsed.data;
  const wanted = new Set(fileTypes.map((t) => t.toUpperCase()));
  const files: RecordingFileInfo[] = [];
  const skipped: string[] = [];
  for (const [index, entry] of (m.recording_files ?? []).entries()) {
    const f = fileSchema.safeParse(entry);
    if (!f.success || !f.data.file_type || !f.data.download_url) {
      skipped.push(`file ${index}: malformed or without file_type/download_url`);
      continue;
    }
    const fileType = f.data.file_type.toUpperCase();
    if (!wanted.has(fileType)) {
      skipped.push(`file ${index}: type ${fileType} not kept`);
      continue;
    }
    const file: Omit<RecordingFileInfo, 'fileId'> = {
      fileType,
      fileExtension: f.data.file_extension ?? null,
      fileSize: f.data.file_size ?? null,
      downloadUrl: f.data.download_url,
      status: f.data.status ?? null,
      recordingType: f.data.recording_type ?? null,
      recordingStart: f.data.recording_start,
      recordingEnd: f.data.recording_end,
    };
    const id = f.data.id === null || f.data.id === undefined || f.data.id === '' ? null : String(f.data.id);
    files.push({ fileId: id ?? derivedFileId(m.uuid, file), ...file });
  }
  return {
    ok: true,
    meeting: { meetingId: String(m.id), meetingUuid: m.uuid, hostId: m.host_id ?? null, accountId: m.account_id ?? null, files },
    skipped,
  };
}

/**
 * CC and TIMELINE entries come without an id. The key must be the same in the webhook and in a
 * later API answer (so the sweep does not add the file twice): hash what both agree on.
 * The download URL is left out on purpose, as it may carry a changing query.
 */
export function derivedFileId(meetingUuid: string, f: Pick<RecordingFileInfo, 'fileType' | 'fileExtension' | 'recordingType' | 'recordingStart' | 'recordingEnd'>): string {
  const parts = [meetingUuid, f.fileType, f.fileExtension ?? '', f.recordingType ?? '', f.recordingStart?.toISOString() ?? '', f.recordingEnd?.toISOString() ?? ''];
  return `derived-${createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32)}`;
}

/** Playable kinds for replay links, best first. */
export const PLAYABLE_TYPES = ['MP4', 'M4A'] as const;

/** Where a stored file lives: one folder per meeting, named by file id; safe for any store. */
export function storageKeyFor(meetingId: string, fileId: string, fileType: string, fileExtension: string | null): string {
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  const ext = (fileExtension ?? extensionFor(fileType)).toLowerCase();
  return `${safe(meetingId)}/${safe(fileId)}.${safe(ext)}`;
}

function extensionFor(fileType: string): string {
  const known: Record<string, string> = { MP4: 'mp4', M4A: 'm4a', TRANSCRIPT: 'vtt', CC: 'vtt', CHAT: 'txt', TIMELINE: 'json', SUMMARY: 'json', CSV: 'csv' };
  return known[fileType] ?? 'bin';
}

/** The Content-Type to serve when Zoom's answer did not say (or said something generic). */
export function contentTypeFor(fileType: string): string {
  const known: Record<string, string> = { MP4: 'video/mp4', M4A: 'audio/mp4', TRANSCRIPT: 'text/vtt', CC: 'text/vtt', CHAT: 'text/plain', TIMELINE: 'application/json', SUMMARY: 'application/json', CSV: 'text/csv' };
  return known[fileType] ?? 'application/octet-stream';
}
