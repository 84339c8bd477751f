import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { MeetingState } from '../db/tables.ts';
import type { Logger } from '../logger.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { HostState, MeetingSettings } from './allocation.ts';
import type { PoolHost } from './hosts.ts';
import type { HostCall } from './meeting-calls.ts';
import type { MeetingFields, MeetingWork } from './meeting-work.ts';

/**
 * One provisioning pass, as its meeting flows (meeting-create.ts, meeting-moves.ts) share it: built
 * once in runPass, so every schedule of the pass ranks and reserves against the same host snapshot.
 * The helpers are runPass's own and are documented there.
 */
export interface Pass {
  db: Db;
  box: SecretBox;
  clock: Clock;
  /** Read when used, for settings a pass does not snapshot (the link's lead time). */
  config: ConfigStore;
  logger: Logger;
  /** The Zoom settings the pass started with. */
  cfg: Config['zoom'];
  settings: MeetingSettings;
  /** A host's meeting writes per UTC day. */
  cap: number;
  /**
   * The UTC day a host write made now counts on: read at each write, since a pass may cross
   * 00:00 UTC and Zoom's daily limits reset then.
   */
  day: () => string;
  /** This worker's lease owner. */
  owner: string;
  states: ReadonlyMap<number, HostState>;
  refused: ReadonlyMap<number, string>;
  byId: ReadonlyMap<number, PoolHost>;
  candidates: () => HostState[];
  leftOut: () => { label: string; reason: string }[];
  inPool: (host: PoolHost) => boolean;
  hostOf: (id: number) => Promise<PoolHost | undefined>;
  freeOwnWindow: (w: MeetingWork) => void;
  nextStamp: () => Date;
  call: HostCall;
  count: (outcome: string) => void;
  settle: (w: MeetingWork, fields: MeetingFields, release?: boolean) => Promise<boolean>;
  fail: (w: MeetingWork, error: unknown, state?: MeetingState, outcome?: string) => Promise<void>;
  unresolved: (w: MeetingWork, reason: string) => Promise<void>;
  setHostAside: (host: PoolHost, error: unknown) => Promise<boolean>;
}
