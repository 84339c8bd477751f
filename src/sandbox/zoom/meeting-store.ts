/**
 * Meeting state and lifecycle (waiting → started → ended, restartable until deleted). Every change emits a
 * MeetingEvent: signed webhooks will subscribe here later instead of reaching into the routes.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Clock, TimerHandle } from '../../clock.ts';
import type { Findings } from './rules.ts';
import { joinUrl } from './views.ts';
import type { MeetingEvent, MeetingRecord, MeetingSettings, MeetingSnapshot, RecordingFile, UserRecord, AccountRecord } from './types.ts';

const DAY = 86_400_000;
/** Scheduled meetings expire 30 days after their date (or last start); deleted ones are recoverable for 7. */
const EXPIRY_MS = 30 * DAY;
const RECOVERY_MS = 7 * DAY;
/** Basic hosts' meetings are cut at 40 minutes, also when only JBH participants are in. */
const BASIC_CAP_MS = 40 * 60_000;

export const DEFAULT_SETTINGS: MeetingSettings = {
  host_video: false,
  participant_video: false,
  cn_meeting: false,
  in_meeting: false,
  join_before_host: false,
  jbh_time: 0,
  mute_upon_entry: false,
  watermark: false,
  use_pmi: false,
  approval_type: 2,
  audio: 'both',
  auto_recording: 'none',
  enforce_login: false,
  enforce_login_domains: '',
  alternative_hosts: '',
  alternative_hosts_email_notification: true,
  close_registration: false,
  show_share_button: false,
  allow_multiple_devices: false,
  registrants_confirmation_email: true,
  waiting_room: false,
  registrants_email_notification: true,
  meeting_authentication: false,
  encryption_type: 'enhanced_encryption',
  email_notification: true,
  private_meeting: false,
  focus_mode: false,
};

export interface NewMeeting {
  type: 1 | 2;
  topic: string;
  agenda: string;
  startTime: Date;
  duration: number;
  timezone: string;
  password: string | undefined;
  settings: MeetingSettings;
}

export type MeetingChanges = Partial<NewMeeting>;

/** Why a live meeting ends: the host (or the API) ended it, Basic's 40-minute cap, or the last person left. */
export type EndReason = 'host' | 'time-limit' | 'everyone-left';

export type StartResult = { started: true; uuid: string } | { started: false; reason: 'not-found' | 'already-started' | 'host-busy' };

export interface MeetingStore {
  create(account: AccountRecord, host: UserRecord, input: NewMeeting): MeetingRecord;
  update(m: MeetingRecord, host: UserRecord, changes: MeetingChanges): void;
  /** Live, unexpired meeting by numeric id or instance UUID; deleted/expired ones are invisible. */
  find(idOrUuid: string | number): MeetingRecord | undefined;
  /** Deleted (and still recoverable) meeting by id. */
  findDeleted(id: number): MeetingRecord | undefined;
  start(id: number, by: 'participant' | 'host'): StartResult;
  end(id: number, reason?: EndReason): boolean;
  remove(m: MeetingRecord): void;
  recover(m: MeetingRecord): void;
  /** The host's visible scheduled meetings, sorted by start time. */
  forHost(hostId: string): MeetingRecord[];
  all(): MeetingRecord[];
  isExpired(m: MeetingRecord): boolean;
  addRecording(id: number, files?: RecordingFile[]): boolean;
  snapshot(m: MeetingRecord): MeetingSnapshot;
  subscribe(listener: (e: MeetingEvent) => void): () => void;
  reset(): void;
}

export interface MeetingStoreDeps {
  clock: Clock;
  findings: Findings;
  /** Base URL for join/start links. */
  baseUrl: () => string;
  hostOf: (m: MeetingRecord) => { host: UserRecord; account: AccountRecord } | undefined;
  /** Called while the meeting is still live, just before it ends: everyone in it leaves first. */
  beforeEnd?: (m: MeetingRecord, reason: EndReason) => void;
}

export function createMeetingStore(deps: MeetingStoreDeps): MeetingStore {
  const { clock, findings } = deps;
  const meetings = new Map<number, MeetingRecord>();
  const listeners = new Set<(e: MeetingEvent) => void>();
  const timers = new Set<TimerHandle>();

  const newId = (): number => {
    for (;;) {
      const id = randomInt(80_000_000_000, 99_999_999_999);
      if (!meetings.has(id)) return id;
    }
  };
  const newUuid = (): string => randomBytes(16).toString('base64');

  const snapshot = (m: MeetingRecord): MeetingSnapshot => ({
    id: m.id,
    uuid: m.uuid,
    accountId: m.accountId,
    hostId: m.hostId,
    hostEmail: m.hostEmail,
    type: m.type,
    topic: m.topic,
    agenda: m.agenda,
    startTime: m.startTime.toISOString(),
    duration: m.duration,
    timezone: m.timezone,
    password: m.password,
    settings: { ...m.settings },
    createdAt: m.createdAt.toISOString(),
    state: m.state,
    deleted: m.deletedAt !== null,
    deletedAt: m.deletedAt?.toISOString() ?? null,
    instances: m.instances.map((i) => ({ uuid: i.uuid, startedAt: i.startedAt.toISOString(), endedAt: i.endedAt?.toISOString() ?? null })),
    updates: m.updates,
    joinUrl: joinUrl(deps.baseUrl(), m),
  });

  const emit = (type: MeetingEvent['type'], m: MeetingRecord): void => {
    const event: MeetingEvent = { type, at: clock.now().toISOString(), accountId: m.accountId, meeting: snapshot(m) };
    for (const l of listeners) l(event);
  };

  const isExpired = (m: MeetingRecord): boolean => {
    if (m.state === 'started') return false;
    const last = m.instances.at(-1)?.startedAt.getTime() ?? 0;
    return clock.now().getTime() > Math.max(m.startTime.getTime(), last) + EXPIRY_MS;
  };

  const visible = (m: MeetingRecord | undefined): MeetingRecord | undefined => (m && !m.deletedAt && !isExpired(m) ? m : undefined);

  /** Zoom accepts these; the emulator records them so tests can assert they never happen. */
  const applyHostRules = (m: MeetingRecord, host: UserRecord): void => {
    const now = clock.now();
    if (host.type === 1 && m.settings.auto_recording === 'cloud') {
      m.settings.auto_recording = 'none';
      findings.violate('cloud-recording-unavailable', m, `host ${host.id} is Basic: auto_recording stored as none`, now);
    }
    if (host.type === 1 && m.duration > 40) {
      findings.violate('basic-over-40-min', m, `duration ${m.duration} min on Basic host ${host.id}: Zoom ends it at 40`, now);
    }
    findings.check(m, [...meetings.values()].filter((o) => o.hostId === m.hostId && visible(o)), now);
  };

  const endNow = (m: MeetingRecord, reason: EndReason): void => {
    deps.beforeEnd?.(m, reason);
    const instance = m.instances.at(-1);
    if (instance && !instance.endedAt) instance.endedAt = clock.now();
    m.state = 'ended';
    emit('meeting.ended', m);
  };

  return {
    create(account, host, input) {
      const m: MeetingRecord = {
        id: newId(),
        uuid: newUuid(),
        accountId: account.accountId,
        hostId: host.id,
        hostEmail: host.email,
        type: input.type,
        topic: input.topic,
        agenda: input.agenda,
        startTime: input.startTime,
        duration: input.duration,
        timezone: input.timezone,
        password: input.password ?? randomBytes(6).toString('base64url').slice(0, 6),
        settings: { ...input.settings },
        createdAt: clock.now(),
        state: 'waiting',
        deletedAt: null,
        instances: [],
        updates: 0,
        recordingFiles: [],
      };
      meetings.set(m.id, m);
      applyHostRules(m, host);
      emit('meeting.created', m);
      return m;
    },
    update(m, host, changes) {
      if (changes.type !== undefined) m.type = changes.type;
      if (changes.topic !== undefined) m.topic = changes.topic;
      if (changes.agenda !== undefined) m.agenda = changes.agenda;
      if (changes.startTime !== undefined) m.startTime = changes.startTime;
      if (changes.duration !== undefined) m.duration = changes.duration;
      if (changes.timezone !== undefined) m.timezone = changes.timezone;
      if (changes.password !== undefined) m.password = changes.password;
      if (changes.settings !== undefined) m.settings = { ...changes.settings };
      m.updates++;
      applyHostRules(m, host);
      emit('meeting.updated', m);
    },
    find(idOrUuid) {
      const id = typeof idOrUuid === 'number' ? idOrUuid : /^\d+$/.test(idOrUuid) ? Number(idOrUuid) : undefined;
      if (id !== undefined) return visible(meetings.get(id));
      for (const m of meetings.values()) {
        if (m.uuid === idOrUuid || m.instances.some((i) => i.uuid === idOrUuid)) return visible(m);
      }
      return undefined;
    },
    findDeleted(id) {
      const m = meetings.get(id);
      return m?.deletedAt && clock.now().getTime() - m.deletedAt.getTime() <= RECOVERY_MS ? m : undefined;
    },
    start(id, by) {
      const m = visible(meetings.get(id));
      if (!m) return { started: false, reason: 'not-found' };
      if (m.state === 'started') return { started: false, reason: 'already-started' };
      const owner = deps.hostOf(m);
      // One live meeting per host; Business licensed hosts get a second only when they start it themselves.
      const capacity = owner && owner.account.plan === 'business' && owner.host.type === 2 && by === 'host' ? 2 : 1;
      const live = [...meetings.values()].filter((o) => o.hostId === m.hostId && o.state === 'started' && !o.deletedAt);
      if (live.length >= capacity) {
        findings.violate('host-busy', m, `host ${m.hostId} has another meeting in progress (${live.map((o) => o.id).join(', ')})`, clock.now());
        return { started: false, reason: 'host-busy' };
      }
      // Every new instance of an ended meeting gets a new UUID.
      if (m.instances.length > 0) m.uuid = newUuid();
      m.instances.push({ uuid: m.uuid, startedAt: clock.now(), endedAt: null });
      m.state = 'started';
      emit('meeting.started', m);
      if (owner?.host.type === 1) {
        const instance = m.instances.at(-1);
        const handle = clock.setTimeout(() => {
          timers.delete(handle);
          if (m.state === 'started' && m.instances.at(-1) === instance) endNow(m, 'time-limit');
        }, BASIC_CAP_MS);
        timers.add(handle);
      }
      return { started: true, uuid: m.uuid };
    },
    end(id, reason = 'host') {
      const m = meetings.get(id);
      if (!m || m.state !== 'started') return false;
      endNow(m, reason);
      return true;
    },
    remove(m) {
      m.deletedAt = clock.now();
      findings.resolveFor(m.id, m.deletedAt);
      emit('meeting.deleted', m);
    },
    recover(m) {
      m.deletedAt = null;
      const owner = deps.hostOf(m);
      if (owner) applyHostRules(m, owner.host);
      emit('meeting.recovered', m);
    },
    forHost(hostId) {
      return [...meetings.values()]
        .filter((m) => m.hostId === hostId && visible(m))
        .sort((a, b) => a.startTime.getTime() - b.startTime.getTime() || a.id - b.id);
    },
    all: () => [...meetings.values()],
    isExpired,
    addRecording(id, files) {
      const m = meetings.get(id);
      if (!m) return false;
      m.recordingFiles = files ?? [
        { id: randomBytes(16).toString('hex'), file_type: 'MP4', file_extension: 'MP4', file_size: 307_200, recording_type: 'shared_screen_with_speaker_view', status: 'completed' },
        { id: randomBytes(16).toString('hex'), file_type: 'M4A', file_extension: 'M4A', file_size: 102_400, recording_type: 'audio_only', status: 'completed' },
      ];
      return true;
    },
    snapshot,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    reset() {
      for (const t of timers) clock.clearTimeout(t);
      timers.clear();
      meetings.clear();
    },
  };
}
