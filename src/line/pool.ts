import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { lineChannelsFingerprint, listLineChannelsWithCredentials, type LineChannel, type LineCredentials } from './channels.ts';

export type PoolChannel = LineChannel & LineCredentials;

/**
 * The LINE channels in memory, with their decrypted credentials. It reloads
 * when the table's fingerprint (row count, latest update) moves: every `line.channelRefresh`, so a
 * channel added, disabled or paused by the CLI or another replica is seen within seconds without a
 * restart; and at once (at most once a second) when a webhook or send names a channel it does not
 * know, so a channel just added through the API works on its first webhook, or when a webhook's
 * signature does not match the secret in memory, so a secret just rotated does not cost events.
 */
export interface ChannelPool {
  bySlug(slug: string): Promise<PoolChannel | undefined>;
  byId(id: number): Promise<PoolChannel | undefined>;
  list(): PoolChannel[];
  /** Reloads if the table changed (or always, with `force`); true when it reloaded. */
  refresh(force?: boolean): Promise<boolean>;
  /**
   * `refresh()` for a caller that found the pool out of date (an unknown channel, a signature the
   * cached secret does not match), at most once a second across all such callers: anyone can send
   * those requests, and each must not cost a query.
   */
  recheck(): Promise<void>;
  /** Record a change made here (a pause) without waiting for the next refresh. */
  patch(id: number, change: Partial<Pick<LineChannel, 'pausedUntil' | 'pauseReason' | 'botUserId'>>): void;
  start(): void;
  stop(): void;
}

/** `recheck` (unknown slug, unmatched signature) reloads at most this often, so a flood of them costs one query a second. */
const RECHECK_MS = 1000;

export async function createChannelPool(deps: { db: Db; box: SecretBox; clock: Clock; config: ConfigStore; logger: Logger }): Promise<ChannelPool> {
  const { db, box, clock, config, logger } = deps;
  let bySlug = new Map<string, PoolChannel>();
  let byId = new Map<number, PoolChannel>();
  let fingerprint = '';
  let lastRecheck = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<boolean> | undefined;
  let timer: TimerHandle | undefined;
  let stopped = false;

  const load = async (force: boolean): Promise<boolean> => {
    const current = await lineChannelsFingerprint(db);
    if (!force && current === fingerprint) return false;
    const channels = await listLineChannelsWithCredentials(db, box);
    const before = byId;
    bySlug = new Map(channels.map((c) => [c.slug, c]));
    byId = new Map(channels.map((c) => [c.id, c]));
    fingerprint = current;
    for (const c of channels) {
      const old = before.get(c.id);
      if (!old) logger.info({ channel: c.slug, enabled: c.enabled }, 'LINE channel added to the pool');
      else if (old.enabled !== c.enabled) logger.info({ channel: c.slug, enabled: c.enabled }, c.enabled ? 'LINE channel enabled' : 'LINE channel disabled');
    }
    return true;
  };

  const refresh = (force = false): Promise<boolean> => {
    // One reload at a time; callers arriving meanwhile share it.
    inFlight ??= load(force).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  const recheck = async (): Promise<void> => {
    const now = clock.now().getTime();
    if (now - lastRecheck < RECHECK_MS) {
      // A concurrent caller is answered by the reload already under way, not by the stale map.
      await inFlight;
      return;
    }
    lastRecheck = now;
    await refresh();
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      refresh()
        .catch((error: unknown) => logger.warn({ err: coerceError(error) }, 'LINE channel pool refresh failed; keeping the channels in memory'))
        .finally(schedule);
    }, config.current().line.channelRefresh.ms);
  };

  await refresh(true);

  return {
    async bySlug(slug) {
      const found = bySlug.get(slug);
      if (found) return found;
      await recheck();
      return bySlug.get(slug);
    },
    async byId(id) {
      const found = byId.get(id);
      if (found) return found;
      await recheck();
      return byId.get(id);
    },
    list: () => [...byId.values()],
    refresh,
    recheck,
    patch(id, change) {
      const channel = byId.get(id);
      if (channel) Object.assign(channel, change);
    },
    start() {
      stopped = false;
      if (!timer) schedule();
    },
    stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
