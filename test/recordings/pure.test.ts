import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { derivedFileId, parseRecordingMeeting, storageKeyFor } from '../../src/recordings/parse.ts';
import { replayCandidate } from '../../src/recordings/playable.ts';
import { checkReplayToken, parseRange, replayToken, replayUrlFor } from '../../src/recordings/replay.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';

const webhookObject = {
  id: 81234567890,
  uuid: 'abc/def==',
  host_id: 'user-pro',
  account_id: 'acc-pro',
  recording_files: [
    { id: 'f-mp4', meeting_id: 'abc/def==', recording_start: '2026-12-01T01:00:00Z', recording_end: '2026-12-01T02:00:00Z', file_type: 'MP4', file_extension: 'MP4', file_size: 1000, download_url: 'https://zoom.us/rec/download/f-mp4', status: 'completed', recording_type: 'shared_screen_with_speaker_view' },
    { id: 'f-m4a', file_type: 'M4A', file_extension: 'M4A', file_size: 200, download_url: 'https://zoom.us/rec/download/f-m4a', status: 'completed', recording_type: 'audio_only' },
    { meeting_id: 'abc/def==', recording_start: '2026-12-01T01:00:00Z', recording_end: '2026-12-01T02:00:00Z', file_type: 'CC', file_extension: 'VTT', download_url: 'https://zoom.us/rec/download/cc?x=1' },
    { id: 'f-tl', file_type: 'TIMELINE', file_extension: 'JSON', download_url: 'https://zoom.us/rec/download/tl' },
    { id: 'broken', file_type: 'MP4' },
    'garbage',
  ],
};
const TYPES = ['MP4', 'M4A', 'TRANSCRIPT', 'CHAT', 'CC'];

describe('parseRecordingMeeting', () => {
  it('reads the webhook object, keeps wanted types and names what it skipped', () => {
    const r = parseRecordingMeeting(webhookObject, TYPES);
    if (!r.ok) throw new Error(r.reason);
    expect(r.meeting).toMatchObject({ meetingId: '81234567890', meetingUuid: 'abc/def==', hostId: 'user-pro', accountId: 'acc-pro' });
    expect(r.meeting.files.map((f) => [f.fileType, f.fileSize])).toEqual([['MP4', 1000], ['M4A', 200], ['CC', null]]);
    expect(r.meeting.files[0]?.recordingStart?.toISOString()).toBe('2026-12-01T01:00:00.000Z');
    expect(r.skipped).toHaveLength(3); // TIMELINE not kept, one without a URL, one not an object
  });

  it('gives an entry without an id the same derived key in the webhook and in a later API answer', () => {
    const a = parseRecordingMeeting(webhookObject, TYPES);
    // The API answer: id as a string, and a different query in the download URL.
    const api = { ...webhookObject, id: '81234567890', recording_files: webhookObject.recording_files.map((f) => (typeof f === 'object' && f.file_type === 'CC' ? { ...f, download_url: 'https://zoom.us/rec/download/cc?x=2' } : f)) };
    const b = parseRecordingMeeting(api, TYPES);
    if (!a.ok || !b.ok) throw new Error('parse failed');
    const cc = (r: typeof a) => r.meeting.files.find((f) => f.fileType === 'CC')?.fileId;
    expect(cc(a)).toMatch(/^derived-[0-9a-f]{32}$/);
    expect(cc(b)).toBe(cc(a));
    expect(b.meeting.meetingId).toBe('81234567890');
    expect(derivedFileId('other', { fileType: 'CC', fileExtension: 'VTT', recordingType: null, recordingStart: null, recordingEnd: null })).not.toBe(cc(a));
  });

  it('refuses what is not a meeting object, with the field at fault', () => {
    expect(parseRecordingMeeting(null, TYPES)).toMatchObject({ ok: false });
    const r = parseRecordingMeeting({ id: 'x1', uuid: 'u' }, TYPES);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain('id');
    expect(parseRecordingMeeting({ id: 5, uuid: 'u' }, TYPES)).toMatchObject({ ok: true, meeting: { files: [] } });
  });

  it('makes storage keys that cannot leave the store', () => {
    expect(storageKeyFor('812', 'f-mp4', 'MP4', 'MP4')).toBe('812/f-mp4.mp4');
    expect(storageKeyFor('812', '../../etc/passwd', 'CC', null)).toBe('812/__.._etc_passwd.vtt');
  });
});

describe('replayCandidate', () => {
  const at = (m: number) => new Date(Date.UTC(2026, 11, 1, 2, m));
  it('prefers the first stored MP4, waits for an MP4 on its way, else takes the M4A', () => {
    expect(replayCandidate([{ id: 1, fileType: 'M4A', state: 'stored', storedAt: at(1) }, { id: 2, fileType: 'MP4', state: 'pending', storedAt: null }])).toBeNull();
    expect(replayCandidate([{ id: 1, fileType: 'M4A', state: 'stored', storedAt: at(1) }, { id: 2, fileType: 'MP4', state: 'failed', storedAt: null }])?.id).toBe(1);
    expect(replayCandidate([{ id: 3, fileType: 'MP4', state: 'stored', storedAt: at(5) }, { id: 2, fileType: 'MP4', state: 'stored', storedAt: at(2) }, { id: 1, fileType: 'M4A', state: 'stored', storedAt: at(1) }])?.id).toBe(2);
    expect(replayCandidate([{ id: 1, fileType: 'CC', state: 'stored', storedAt: at(1) }])).toBeNull();
  });
});

describe('replay links', () => {
  const box = createSecretBox(randomBytes(32));
  const now = new Date('2026-12-01T00:00:00Z');
  it('signs, checks, and tells tampered (403), malformed (404) and expired (410) apart', () => {
    const config = parseConfig({ http: { publicBaseUrl: 'https://sched.example.com/' } }, 'test');
    const url = replayUrlFor(config, box, 42, now);
    expect(url).toMatch(/^https:\/\/sched\.example\.com\/replay\/42\.\d+\.[\w-]+$/);
    const token = url.split('/').pop() ?? '';
    expect(checkReplayToken(box, token, now)).toMatchObject({ ok: true, recordingId: 42, expiresAt: new Date(now.getTime() + 7 * 86_400_000) });
    expect(checkReplayToken(box, token.replace(/^42\./, '43.'), now)).toMatchObject({ ok: false, status: 403 });
    expect(checkReplayToken(createSecretBox(randomBytes(32)), token, now)).toMatchObject({ ok: false, status: 403 });
    expect(checkReplayToken(box, 'nonsense', now)).toMatchObject({ ok: false, status: 404 });
    expect(checkReplayToken(box, token, new Date(now.getTime() + 7 * 86_400_000))).toMatchObject({ ok: false, status: 410 });
    expect(replayToken(box, 42, new Date(now.getTime() + 1000))).not.toBe(token);
  });

  it('separates signing purposes', () => {
    const sig = box.sign('1.2', 'replay-link');
    expect(box.verify('1.2', sig, 'replay-link')).toBe(true);
    expect(box.verify('1.2', sig, 'other')).toBe(false);
    expect(box.verify('1.2', 'short', 'replay-link')).toBe(false);
  });

  it('parses single byte ranges', () => {
    expect(parseRange(undefined, 100)).toBeNull();
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=50-500', 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
  });
});
