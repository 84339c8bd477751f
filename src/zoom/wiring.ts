import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { quotaDay } from './allocation.ts';
import { createZoomClient, type ZoomClient } from './client.ts';
import { recordAccountUsage } from './usage.ts';

/** The Zoom client as the service uses it: settings from the live config, every request counted in the DB. */
export function zoomClientFor(deps: { db: Db; clock: Clock; config: ConfigStore; metrics: Pick<Metrics, 'zoomRequestSeconds'>; logger?: Logger }): ZoomClient {
  const { db, clock, config } = deps;
  return createZoomClient({
    clock,
    metrics: deps.metrics,
    settings: () => {
      const z = config.current().zoom;
      return {
        apiBaseUrl: z.apiBaseUrl,
        oauthUrl: z.oauthUrl,
        timeoutMs: z.requestTimeout.ms,
        attempts: z.retry.attempts,
        backoff: { baseDelayMs: z.retry.baseDelay.ms, maxDelayMs: z.retry.maxDelay.ms },
      };
    },
    onRequest: (accountId, category) => recordAccountUsage(db, accountId, quotaDay(clock.now(), config.current().zoom.quota.timezone), category),
    onRequestError: (error) => deps.logger?.warn({ err: coerceError(error) }, 'could not count a Zoom request in the usage counters'),
  });
}
