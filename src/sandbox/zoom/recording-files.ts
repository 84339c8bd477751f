/**
 * Recording file contents and download tokens. Bytes are derived from the file id (SHA-256 in counter mode), so a
 * test can check a download byte for byte against `recordingFile(id)` without the emulator storing anything.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.ts';
import type { RecordingFile } from './types.ts';

/** `download_token` of recording.completed "only lasts for 24 hours after generation" (zoom-api.md §8). */
const DOWNLOAD_TOKEN_TTL_MS = 24 * 3_600_000;

const CONTENT_TYPES: Record<string, string> = {
  MP4: 'video/mp4',
  M4A: 'audio/mp4',
  TRANSCRIPT: 'text/vtt',
  CC: 'text/vtt',
  CHAT: 'text/plain',
  CHAT_MESSAGE: 'text/plain',
  CSV: 'text/csv',
  SUMMARY: 'application/json',
  TIMELINE: 'application/json',
};

export function contentType(fileType: string): string {
  return CONTENT_TYPES[fileType.toUpperCase()] ?? 'application/octet-stream';
}

/** Deterministic bytes of `size` for `fileId`. */
export function fileBytes(fileId: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (let block = 0; offset < size; block++) {
    const digest = createHash('sha256').update(`${fileId}:${block}`).digest();
    offset += digest.copy(out, offset, 0, Math.min(digest.length, size - offset));
  }
  return out;
}

export interface RecordingFiles {
  /** Bytes (cached), sha256 hex and content type of a file. */
  content(file: RecordingFile): { bytes: Buffer; sha256: string; contentType: string };
  /** A download_token for the meeting's recordings, valid 24 h on the emulator clock. */
  issueToken(meetingId: number): string;
  /** The meeting a still-valid download_token authorises. */
  tokenMeeting(token: string): number | undefined;
  reset(): void;
}

export function createRecordingFiles(clock: Clock): RecordingFiles {
  const cache = new Map<string, { bytes: Buffer; sha256: string; contentType: string }>();
  const tokens = new Map<string, { meetingId: number; expiresAt: number }>();
  return {
    content(file) {
      const key = `${file.id}|${file.file_size}|${file.file_type}`;
      let hit = cache.get(key);
      if (!hit) {
        const bytes = fileBytes(file.id, file.file_size);
        hit = { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), contentType: contentType(file.file_type) };
        cache.set(key, hit);
      }
      return { ...hit, bytes: Buffer.from(hit.bytes) };
    },
    issueToken(meetingId) {
      const token = randomBytes(48).toString('base64url');
      tokens.set(token, { meetingId, expiresAt: clock.now().getTime() + DOWNLOAD_TOKEN_TTL_MS });
      return token;
    },
    tokenMeeting(token) {
      const t = tokens.get(token);
      return t && clock.now().getTime() < t.expiresAt ? t.meetingId : undefined;
    },
    reset() {
      cache.clear();
      tokens.clear();
    },
  };
}
