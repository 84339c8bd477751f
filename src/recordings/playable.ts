import type { RecordingState } from '../db/tables.ts';

interface FileState {
  id: number;
  fileType: string;
  state: RecordingState;
  storedAt: Date | null;
}

/**
 * The file a schedule's replay link should point at: the first stored MP4; else, once no MP4 is
 * still on its way, the first stored M4A (audio beats nothing); else none yet.
 */
export function replayCandidate<T extends FileState>(files: readonly T[]): T | null {
  const firstStored = (type: string): T | undefined =>
    files
      .filter((f) => f.fileType === type && f.state === 'stored')
      .sort((a, b) => (a.storedAt?.getTime() ?? 0) - (b.storedAt?.getTime() ?? 0) || a.id - b.id)[0];
  const mp4 = firstStored('MP4');
  if (mp4) return mp4;
  if (files.some((f) => f.fileType === 'MP4' && (f.state === 'pending' || f.state === 'downloading'))) return null;
  return firstStored('M4A') ?? null;
}
