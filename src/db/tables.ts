import type { ColumnType, Generated } from 'kysely';

/**
 * Row types as both dialects return them. Instants are `timestamptz` on PostgreSQL (read as Date) and
 * ISO-8601 UTC text on SQLite (read as string); flags are boolean on PostgreSQL and 0/1 on SQLite.
 * Writes take Date and boolean on both (the SQLite driver converts). `row.ts` maps rows to domain values.
 */
export type Instant = ColumnType<Date | string, Date, Date>;
export type NullableInstant = ColumnType<Date | string | null, Date | null, Date | null>;
export type Flag = ColumnType<boolean | number, boolean, boolean>;
/** JSON: jsonb on PostgreSQL (read parsed), text on SQLite (read as text); written as JSON text. */
export type Json = ColumnType<unknown, string, string>;

export interface ZoomAccountsTable {
  id: Generated<number>;
  label: string;
  plan: 'licensed' | 'basic';
  account_id: string;
  client_id: string;
  client_secret: string; // encrypted
  host_user_id: string;
  webhook_secret_token: string | null; // encrypted
  enabled: Flag;
  /** Set when Zoom's per-host daily create/update limit answered 429; cleared by time. */
  exhausted_until: NullableInstant;
  /** Round-robin: the least recently assigned eligible host goes first. */
  last_assigned_at: ColumnType<Date | string | null, Date | null | undefined, Date | null>;
  /** Why Zoom refused this host for good, and since when (0013); cleared when a call on it succeeds. */
  refused_reason: ColumnType<string | null, string | null | undefined, string | null>;
  refused_at: ColumnType<Date | string | null, Date | null | undefined, Date | null>;
  /** The refusal was of the account's credentials (401, OAuth): a success on any of its hosts clears it on all (0013). */
  refused_account_wide: ColumnType<boolean | number, boolean | undefined, boolean>;
  created_at: Instant;
  updated_at: Instant;
}

/** Requests per Zoom account per day (in zoom quota time zone) per rate-limit category. */
export interface ZoomAccountUsageTable {
  account_id: string;
  day: string;
  category: string;
  count: number;
}

/** Meeting creates/updates per host per UTC day (Zoom's 100/day/host limit). */
export interface ZoomHostUsageTable {
  zoom_account_id: number;
  day: string;
  meeting_writes: number;
}

export interface LineChannelsTable {
  id: Generated<number>;
  label: string;
  slug: string;
  channel_id: string;
  channel_secret: string; // encrypted
  channel_access_token: string; // encrypted
  bot_user_id: string | null;
  enabled: Flag;
  /** Set when the channel's monthly quota is exhausted: sending pauses until then. */
  paused_until: NullableInstant;
  pause_reason: string | null;
  created_at: Instant;
  updated_at: Instant;
}

export type FollowingStatus = 'unknown' | 'following' | 'unfollowed';

export interface MembersTable {
  id: Generated<number>;
  channel_id: number;
  line_user_id: string;
  display_name: string | null;
  following: FollowingStatus;
  /** Timestamp of the LINE event that set `following` (events apply in timestamp order). */
  following_changed_at: NullableInstant;
  created_at: Instant;
  updated_at: Instant;
}

export interface LineEventsTable {
  id: Generated<number>;
  channel_id: number;
  webhook_event_id: string;
  type: string;
  line_user_id: string | null;
  event_at: Instant;
  payload: Json;
  received_at: Instant;
  processed_at: NullableInstant;
  error: string | null;
  /** What processing made of it: applied | stale | superseded | skipped: … | ignored: … (0003-line). */
  outcome: ColumnType<string | null, string | null | undefined, string | null>;
  /** Failed tries so far, and when the next may start (0010-line-event-retries). */
  attempts: ColumnType<number, number | undefined, number>;
  available_at: NullableInstant;
}

export type MeetingState = 'none' | 'creating' | 'ready' | 'updating' | 'deleting' | 'deleted' | 'no_capacity' | 'failed' | 'ended' | 'ended_empty';

export interface SchedulesTable {
  id: Generated<number>;
  external_id: string;
  title: string;
  starts_at: Instant;
  ends_at: Instant;
  trial: Flag;
  min_participants: number;
  feedback_url: string | null;
  cancelled: Flag;
  /** Bumped whenever the time or the cancelled flag changes; deliveries and meetings remember it. */
  version: number;
  /** The platform's revision of this class, if it sends one: older writes are ignored. */
  source_revision: number | null;
  meeting_state: MeetingState;
  meeting_account_id: number | null;
  meeting_id: string | null;
  meeting_uuid: string | null;
  join_url: string | null;
  start_url: string | null; // encrypted: it starts the meeting as the host
  passcode: string | null;
  /** The schedule version the meeting was made for. */
  meeting_version: number | null;
  /** Marker of the create attempt in flight (recorded before calling Zoom). */
  meeting_attempt_id: string | null;
  /** The version and instant the intent in flight was recorded for (recovery stamps and ages it). */
  meeting_intent_version: number | null;
  meeting_intent_at: NullableInstant;
  /** When the finished class's meeting was closed to late students (join before host off). */
  meeting_closed_at: NullableInstant;
  /** The class title the meeting's topic was made from (0013): when it differs from `title`, the topic is PATCHed. */
  meeting_title: ColumnType<string | null, string | null | undefined, string | null>;
  /** A meeting a re-host replaced, and its host, still to delete at Zoom (0013). */
  replaced_meeting_id: ColumnType<string | null, string | null | undefined, string | null>;
  replaced_meeting_account_id: ColumnType<number | null, number | null | undefined, number | null>;
  /** The replaced meeting's host window, held on its host until it is deleted (0013). */
  replaced_window_start: ColumnType<Date | string | null, Date | null | undefined, Date | null>;
  replaced_window_end: ColumnType<Date | string | null, Date | null | undefined, Date | null>;
  /** The replaced meeting's DELETE backs off on its own (0013): the class's other work never waits for it. */
  replaced_attempts: ColumnType<number, number | undefined, number>;
  replaced_retry_at: ColumnType<Date | string | null, Date | null | undefined, Date | null>;
  meeting_error: string | null;
  /** The host time this meeting reserves: [start − early join, end + after-class buffer]. */
  host_window_start: NullableInstant;
  host_window_end: NullableInstant;
  /** Lease on the schedule's meeting work (provisioner). */
  meeting_lease_owner: string | null;
  meeting_lease_expires_at: NullableInstant;
  meeting_attempts: ColumnType<number, number | undefined, number>;
  /** After a failure: not before this instant. */
  meeting_retry_at: NullableInstant;
  /** Live state as Zoom reports it (webhooks, reconciliation poll) (0004-monitor). */
  live_status: ColumnType<LiveStatus | null, LiveStatus | null | undefined, LiveStatus | null>;
  live_started_at: NullableInstant;
  live_ended_at: NullableInstant;
  /** Students in the meeting now (host and our own accounts excluded), and the most at once. */
  attendance: ColumnType<number, number | undefined, number>;
  attendance_peak: ColumnType<number, number | undefined, number>;
  attendance_checked_at: NullableInstant;
  /** The grace-time verdict. */
  monitor_state: ColumnType<MonitorState | null, MonitorState | null | undefined, MonitorState | null>;
  monitor_reason: string | null;
  monitor_checked_at: NullableInstant;
  monitor_lease_owner: string | null;
  monitor_lease_expires_at: NullableInstant;
  /** Booked students against min_participants, before provisioning and before the meeting link. */
  headcount_state: ColumnType<HeadcountState | null, HeadcountState | null | undefined, HeadcountState | null>;
  headcount_reason: string | null;
  headcount_stage: ColumnType<HeadcountStage | null, HeadcountStage | null | undefined, HeadcountStage | null>;
  headcount_checked_at: NullableInstant;
  /** When the recording sweep last asked Zoom about this class. */
  recording_swept_at: NullableInstant;
  created_at: Instant;
  updated_at: Instant;
}

export type LiveStatus = 'waiting' | 'started' | 'ended';
/** `ending`: the meeting is being ended at Zoom (recorded first, so a check cut off midway is finished by the next). */
export type MonitorState = 'pending' | 'ok' | 'below_minimum' | 'ending' | 'ended_empty' | 'not_started' | 'skipped';
export type HeadcountState = 'ok' | 'below_minimum' | 'cancelled';
export type HeadcountStage = 'provision' | 'send';

export interface AppointmentsTable {
  id: Generated<number>;
  external_id: string;
  schedule_id: number;
  member_id: number;
  cancelled: Flag;
  /** The platform's revision of this booking, if it sends one: older writes are ignored. */
  source_revision: number | null;
  created_at: Instant;
  updated_at: Instant;
}

/** replay_url: the recording link; class_cancelled: the minimum-headcount policy called the class off. */
export type DeliveryKind = 'meeting_url' | 'feedback_url' | 'replay_url' | 'class_cancelled';
export type DeliveryState = 'pending' | 'sending' | 'sent' | 'skipped' | 'failed' | 'expired' | 'cancelled';

export interface DeliveriesTable {
  id: Generated<number>;
  appointment_id: number;
  kind: DeliveryKind;
  due_at: Instant;
  /** After this instant the message is no longer useful: it expires instead of going out late. */
  not_after: Instant;
  /** When it may next be tried (due_at at first, later moved by backoff). */
  available_at: Instant;
  state: DeliveryState;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: NullableInstant;
  /** Fencing token: completion only counts if the lease token is still ours. */
  lease_token: string | null;
  /**
   * X-Line-Retry-Key: fixed before the first attempt, so every retry carries it; a new one only when
   * the message is for another occasion (the class or booking moved).
   */
  retry_key: string;
  schedule_version: number;
  /** The class times a meeting or feedback link was made for (null for other kinds, and rows older than 0008). */
  class_starts_at: NullableInstant;
  class_ends_at: NullableInstant;
  sent_at: NullableInstant;
  line_request_id: string | null;
  last_error: string | null;
  created_at: Instant;
  updated_at: Instant;
}

export interface MeetingEventsTable {
  id: Generated<number>;
  account_id: string;
  /** Deduplication key of the webhook delivery (Zoom retries the same event). */
  event_key: string;
  event: string;
  meeting_id: string | null;
  meeting_uuid: string | null;
  event_at: Instant;
  payload: Json;
  received_at: Instant;
  processed_at: NullableInstant;
  error: string | null;
  /** What processing made of it (0004-monitor). */
  outcome: ColumnType<string | null, string | null | undefined, string | null>;
  /** Failed applications so far, and when to try again (0004-monitor). */
  attempts: ColumnType<number, number | undefined, number>;
  retry_at: NullableInstant;
}

/** Who was seen in a meeting instance; `present` is the latest state by event time (0004-monitor). */
export interface MeetingParticipantsTable {
  schedule_id: number | null;
  meeting_id: string;
  meeting_uuid: string;
  participant_key: string;
  user_name: string | null;
  email: string | null;
  role: 'student' | 'host' | 'staff';
  joined_at: NullableInstant;
  left_at: NullableInstant;
  present: Flag;
  changed_at: Instant;
}

export type RecordingState = 'pending' | 'downloading' | 'stored' | 'failed';

export interface RecordingsTable {
  id: Generated<number>;
  schedule_id: number | null;
  meeting_id: string;
  meeting_uuid: string;
  file_id: string;
  file_type: string;
  file_size: number | null;
  storage_key: string | null;
  checksum_sha256: string | null;
  state: RecordingState;
  attempts: number;
  last_error: string | null;
  created_at: Instant;
  updated_at: Instant;
  /** 0004-monitor: what a download needs to run, resume and retry. */
  zoom_account_id: number | null;
  file_extension: string | null;
  recording_type: string | null;
  recording_start: NullableInstant;
  recording_end: NullableInstant;
  download_url: string | null;
  /** The webhook's download_token (valid 24 h), encrypted. */
  download_token: string | null;
  download_token_expires_at: NullableInstant;
  content_type: string | null;
  bytes_stored: ColumnType<number, number | undefined, number>;
  /** Not tried again before this instant (backoff). */
  available_at: NullableInstant;
  lease_owner: string | null;
  lease_expires_at: NullableInstant;
  stored_at: NullableInstant;
}

export interface MetaTable {
  key: string;
  value: string;
}

/** Per-channel, per-endpoint token bucket shared by every replica (0003-line). */
export interface LineRateBucketsTable {
  channel_id: number;
  endpoint: string;
  tokens: number;
  refilled_at: Instant;
  /** Optimistic concurrency: a reservation only counts if the version it read is still current. */
  version: number;
}

/** One LINE API call: LINE keeps no logs for us, so every x-line-request-id is kept here. */
export interface LineRequestsTable {
  id: Generated<number>;
  channel_id: number;
  endpoint: string;
  retry_key: string | null;
  /** null: no HTTP answer (timeout, network error). */
  status: number | null;
  request_id: string | null;
  accepted_request_id: string | null;
  outcome: string;
  error: string | null;
  started_at: Instant;
  duration_ms: number;
}

export type MulticastState = 'pending' | 'sent' | 'failed';

/** A multicast request: recipients (line_multicast_members) and retry key fixed before the first attempt. */
export interface LineMulticastsTable {
  id: Generated<number>;
  channel_id: number;
  retry_key: string;
  /** The exact message objects, so every attempt sends the same content. */
  messages: Json;
  state: MulticastState;
  attempts: number;
  first_attempt_at: NullableInstant;
  sent_at: NullableInstant;
  line_request_id: string | null;
  accepted_request_id: string | null;
  last_error: string | null;
  created_at: Instant;
  updated_at: Instant;
}

export interface LineMulticastMembersTable {
  multicast_id: number;
  member_id: number;
  delivery_id: number | null;
}

/** Imagemap renditions, immutable per (hash, width). */
export interface ImagemapImagesTable {
  hash: string;
  width: number;
  /** Height of this rendition. */
  height: number;
  content_type: string;
  bytes: ColumnType<Uint8Array, Uint8Array, never>;
  created_at: Instant;
}

export interface Tables {
  zoom_accounts: ZoomAccountsTable;
  zoom_account_usage: ZoomAccountUsageTable;
  zoom_host_usage: ZoomHostUsageTable;
  line_channels: LineChannelsTable;
  members: MembersTable;
  line_events: LineEventsTable;
  schedules: SchedulesTable;
  appointments: AppointmentsTable;
  deliveries: DeliveriesTable;
  meeting_events: MeetingEventsTable;
  meeting_participants: MeetingParticipantsTable;
  recordings: RecordingsTable;
  meta: MetaTable;
  line_rate_buckets: LineRateBucketsTable;
  line_requests: LineRequestsTable;
  line_multicasts: LineMulticastsTable;
  line_multicast_members: LineMulticastMembersTable;
  imagemap_images: ImagemapImagesTable;
}
