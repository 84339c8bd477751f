/** Shared shapes of the Zoom emulator: configuration, stored records and the snapshots it reports. */

/** The account's plan: decides the rate-limit tier and the default user type. `basic` = a free account. */
export type Plan = 'basic' | 'pro' | 'business';

/** Zoom's rate-limit labels. */
export type Category = 'Light' | 'Medium' | 'Heavy' | 'Resource-intensive';

/** `1` Basic (free: 40-minute cap, no cloud recording), `2` Licensed. */
export type UserType = 1 | 2;

export interface ZoomUserConfig {
  id: string;
  email: string;
  /** Default: 1 on a `basic` plan, else 2. */
  type?: UserType;
  firstName?: string;
  lastName?: string;
  /** IANA zone used when a local `start_time` comes without `timezone`. Default: the account's. */
  timezone?: string;
  /** Answer create/list with 400 code 3161 ("hosting and scheduling capabilities are not allowed"). */
  hostingDisabled?: boolean;
}

export interface ZoomAccountConfig {
  accountId: string;
  clientId: string;
  clientSecret: string;
  plan: Plan;
  users: ZoomUserConfig[];
  /** Account timezone (default 'UTC'). */
  timezone?: string;
  /** Overrides of this account's tier limits. */
  rateLimits?: RateLimitOverrides;
}

export interface RateLimitOverrides {
  /** Requests per second per category (per account). */
  perSecond?: Partial<Record<Category, number>>;
  /** Requests per UTC day per category (per account); `null` = no daily cap. */
  daily?: Partial<Record<Category, number | null>>;
}

export interface UserRecord {
  id: string;
  email: string;
  type: UserType;
  firstName: string;
  lastName: string;
  timezone: string;
  hostingDisabled: boolean;
  pmi: number;
  createdAt: Date;
}

export interface AccountRecord {
  accountId: string;
  clientId: string;
  clientSecret: string;
  plan: Plan;
  timezone: string;
  rateLimits: RateLimitOverrides | undefined;
  users: UserRecord[];
}

/** Meeting settings as stored and echoed: the known ones typed, anything else passed through. */
export interface MeetingSettings {
  join_before_host: boolean;
  jbh_time: 0 | 5 | 10;
  waiting_room: boolean;
  auto_recording: 'local' | 'cloud' | 'none';
  approval_type: 0 | 1 | 2;
  audio: 'both' | 'telephony' | 'voip';
  host_video: boolean;
  participant_video: boolean;
  mute_upon_entry: boolean;
  meeting_authentication: boolean;
  use_pmi: boolean;
  email_notification: boolean;
  alternative_hosts: string;
  [key: string]: unknown;
}

/** GET reports `ended` as `waiting` (the API enum is waiting|started): a type-2 meeting can be started again until deleted. */
export type MeetingState = 'waiting' | 'started' | 'ended';

export interface MeetingInstance {
  uuid: string;
  startedAt: Date;
  endedAt: Date | null;
}

export interface RecordingFile {
  id: string;
  file_type: string;
  file_extension: string;
  file_size: number;
  recording_type: string;
  status: 'completed';
}

export interface MeetingRecord {
  id: number;
  /** UUID of the latest instance (changes every time the meeting is started again after ending). */
  uuid: string;
  accountId: string;
  hostId: string;
  hostEmail: string;
  type: 1 | 2;
  topic: string;
  agenda: string;
  startTime: Date;
  /** Minutes. */
  duration: number;
  timezone: string;
  password: string;
  settings: MeetingSettings;
  createdAt: Date;
  state: MeetingState;
  deletedAt: Date | null;
  instances: MeetingInstance[];
  /** How often PATCH changed it. */
  updates: number;
  recordingFiles: RecordingFile[];
}

/** A meeting as `meetings()` and `/_emulator/meetings` report it (JSON-friendly). */
export interface MeetingSnapshot {
  id: number;
  uuid: string;
  accountId: string;
  hostId: string;
  hostEmail: string;
  type: 1 | 2;
  topic: string;
  agenda: string;
  startTime: string;
  duration: number;
  timezone: string;
  password: string;
  settings: MeetingSettings;
  createdAt: string;
  state: MeetingState;
  deleted: boolean;
  deletedAt: string | null;
  instances: Array<{ uuid: string; startedAt: string; endedAt: string | null }>;
  updates: number;
  joinUrl: string;
}

export interface OverlapRecord {
  hostId: string;
  /** The two meetings, lower id first. */
  meetingIds: [number, number];
  /** `scheduled`: start..start+duration windows overlap; `join-before-host`: only with the JBH lead added. */
  kind: 'scheduled' | 'join-before-host';
  detectedAt: string;
  /** False once one of them was deleted or moved apart. */
  active: boolean;
  resolvedAt: string | null;
}

export type ViolationKind =
  /** A Basic host's meeting scheduled for more than 40 minutes: Zoom accepts it and cuts it at 40. */
  | 'basic-over-40-min'
  /** `auto_recording: cloud` for a Basic host: Zoom silently stores `none`. */
  | 'cloud-recording-unavailable'
  /** A meeting was started while its host already had the allowed number of live meetings. */
  | 'host-busy';

export interface Violation {
  kind: ViolationKind;
  meetingId: number;
  hostId: string;
  at: string;
  detail: string;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: string;
  accountId: string | null;
  /** HTTP status sent; null when the connection was dropped or held. */
  status: number | null;
  outcome: 'pending' | 'responded' | 'dropped' | 'timeout';
  fault: string | null;
  at: string;
  /** Zoom's error code, when the body had one. */
  code: number | null;
}

/** Lifecycle events (the seam for signed webhooks later). */
export interface MeetingEvent {
  type: 'meeting.created' | 'meeting.updated' | 'meeting.deleted' | 'meeting.recovered' | 'meeting.started' | 'meeting.ended';
  at: string;
  accountId: string;
  meeting: MeetingSnapshot;
}

/** One attempt to deliver a signed webhook (or a url_validation), as `webhooks.deliveries()` reports it. */
export interface WebhookDelivery {
  id: string;
  event: string;
  accountId: string;
  /** 1 for the first try, 2–4 for the retries at +5/+20/+60 min. */
  attempt: number;
  /** The subscriber's HTTP status; null while in flight, or when it did not answer within 3 s. */
  status: number | null;
  at: string;
  /** The raw JSON body that was signed. */
  body: string;
}

export interface WebhookSubscription {
  accountId: string;
  url: string;
  /** The app's Secret Token: HMAC key of `x-zm-signature` and of url_validation's encryptedToken. */
  secretToken: string;
  /** Default: every event. `endpoint.url_validation` is always sent. */
  events?: string[];
}

export interface Person {
  name: string;
  email?: string;
  /** The Zoom user id of a signed-in person ('' or absent for guests; the host's id by default for role host). */
  userId?: string;
  role?: 'participant' | 'host';
}

export interface ParticipantSnapshot {
  uuid: string;
  name: string;
  email: string;
  userId: string;
  joinedAt: string;
  role: 'participant' | 'host';
}

export interface ScriptStep {
  /** Minutes after the meeting's scheduled start (may be negative). */
  atMinute: number;
  join?: Person;
  /** The name of a person to leave. */
  leave?: string;
}

export type DownloadFaultRule = {
  fileId?: string;
  /** truncate: send `afterBytes` then destroy the socket; status: answer `status`; html: Zoom's 200 HTML auth page. */
  kind: 'truncate' | 'status' | 'html';
  afterBytes?: number;
  status?: number;
  /** Default 1; Infinity for all. */
  times?: number;
};

export interface DownloadRequest {
  fileId: string;
  range: string | null;
  status: number;
  at: string;
  auth: 'bearer' | 'query' | 'none';
  /** `download`: the download_url (302 or an error page); `file`: the signed file URL it redirects to. */
  step: 'download' | 'file';
}
