/** The JSON Zoom answers with, built from stored records (field names and formats as in SPEC). */
import { randomBytes } from 'node:crypto';
import { zoomTime } from './time.ts';
import type { AccountRecord, MeetingRecord, UserRecord } from './types.ts';

const pwdToken = (m: MeetingRecord): string => Buffer.from(m.password).toString('base64url');

/** Phone/H.323 passcodes are digits only: the passcode's digits, else digits derived from the id. */
const numericPassword = (m: MeetingRecord): string => m.password.replace(/\D/g, '') || String(m.id).slice(-6);

export function joinUrl(baseUrl: string, m: MeetingRecord): string {
  return `${baseUrl}/j/${m.id}?pwd=${pwdToken(m)}`;
}

/** GET's status enum is `waiting | started` (zoom-api.md §6): an ended type-2 meeting is waiting again, as it can be restarted. */
export function apiStatus(m: MeetingRecord): 'waiting' | 'started' {
  return m.state === 'started' ? 'started' : 'waiting';
}

/** Create (201) and GET (200) bodies. The create body includes uuid/host_id/status too, as clients observe. */
export function meetingBody(baseUrl: string, m: MeetingRecord): Record<string, unknown> {
  return {
    uuid: m.uuid,
    id: m.id,
    host_id: m.hostId,
    host_email: m.hostEmail,
    topic: m.topic,
    type: m.type,
    status: apiStatus(m),
    start_time: zoomTime(m.startTime),
    duration: m.duration,
    timezone: m.timezone,
    ...(m.agenda ? { agenda: m.agenda } : {}),
    created_at: zoomTime(m.createdAt),
    // A fresh start_url on every read: the real one expires after 2 hours.
    start_url: `${baseUrl}/s/${m.id}?zak=${randomBytes(24).toString('base64url')}`,
    join_url: joinUrl(baseUrl, m),
    password: m.password,
    h323_password: numericPassword(m),
    pstn_password: numericPassword(m),
    encrypted_password: pwdToken(m),
    pre_schedule: false,
    settings: { ...m.settings },
    creation_source: 'open_api',
  };
}

export function listItem(baseUrl: string, m: MeetingRecord): Record<string, unknown> {
  return {
    uuid: m.uuid,
    id: m.id,
    host_id: m.hostId,
    topic: m.topic,
    type: m.type,
    start_time: zoomTime(m.startTime),
    duration: m.duration,
    timezone: m.timezone,
    ...(m.agenda ? { agenda: m.agenda } : {}),
    created_at: zoomTime(m.createdAt),
    join_url: joinUrl(baseUrl, m),
  };
}

export function userBody(account: AccountRecord, u: UserRecord): Record<string, unknown> {
  return {
    id: u.id,
    first_name: u.firstName,
    last_name: u.lastName,
    display_name: `${u.firstName} ${u.lastName}`.trim(),
    email: u.email,
    type: u.type,
    role_name: 'Member',
    pmi: u.pmi,
    use_pmi: false,
    timezone: u.timezone,
    verified: 1,
    dept: '',
    created_at: zoomTime(u.createdAt),
    user_created_at: zoomTime(u.createdAt),
    language: 'en-US',
    status: 'active',
    role_id: '2',
    account_id: account.accountId,
    cluster: 'us06',
  };
}

export function recordingsBody(baseUrl: string, m: MeetingRecord): Record<string, unknown> {
  const instance = m.instances.at(-1);
  const start = instance?.startedAt ?? m.startTime;
  const end = instance?.endedAt ?? new Date(start.getTime() + m.duration * 60_000);
  const files = m.recordingFiles.map((f) => ({
    id: f.id,
    meeting_id: instance?.uuid ?? m.uuid,
    recording_start: zoomTime(start),
    recording_end: zoomTime(end),
    file_type: f.file_type,
    file_extension: f.file_extension,
    file_size: f.file_size,
    play_url: `${baseUrl}/rec/play/${f.id}`,
    download_url: `${baseUrl}/rec/download/${f.id}`,
    status: f.status,
    recording_type: f.recording_type,
  }));
  return {
    uuid: instance?.uuid ?? m.uuid,
    id: m.id,
    account_id: m.accountId,
    host_id: m.hostId,
    topic: m.topic,
    type: m.type,
    start_time: zoomTime(start),
    timezone: m.timezone,
    duration: Math.round((end.getTime() - start.getTime()) / 60_000),
    total_size: files.reduce((sum, f) => sum + f.file_size, 0),
    recording_count: files.length,
    share_url: `${baseUrl}/rec/share/${m.id}`,
    recording_files: files,
    password: '',
    recording_play_passcode: randomBytes(24).toString('base64url'),
  };
}
