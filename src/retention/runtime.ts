import { Counter, type Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createPeriodTimer } from '../period-timer.ts';
import { pruneDeliveries, pruneLineEvents, pruneLineRequests, pruneMeetingEvents, pruneMulticastChunks } from './prune.ts';

/** What one pass deleted, by table. */
export type Pruned = Partial<Record<'line_events' | 'meeting_events' | 'line_requests' | 'line_multicasts' | 'deliveries', number>>;

/** One pass: each table whose retention is set loses its finished rows older than that. */
export async function pruneOnce(db: Db, now: Date, retention: Config['retention']): Promise<Pruned> {
  const before = (keep: { ms: number }): Date => new Date(now.getTime() - keep.ms);
  const out: Pruned = {};
  if (retention.webhookEvents) {
    out.line_events = await pruneLineEvents(db, before(retention.webhookEvents));
    out.meeting_events = await pruneMeetingEvents(db, before(retention.webhookEvents));
  }
  if (retention.lineRequests) out.line_requests = await pruneLineRequests(db, before(retention.lineRequests));
  if (retention.multicastChunks) out.line_multicasts = await pruneMulticastChunks(db, before(retention.multicastChunks));
  if (retention.deliveries) out.deliveries = await pruneDeliveries(db, before(retention.deliveries));
  return out;
}

export interface Retention {
  start(): void;
  stop(): Promise<void>;
  /** Resolves once no pass is running (tests await this instead of sleeping). */
  idle(): Promise<void>;
}

/** Prunes every `retention.interval` (live), the first pass one interval after start. */
export function createRetention(deps: { db: Db; clock: Clock; config: ConfigStore; logger: Logger; registry: Registry }): Retention {
  const { db, clock, config, logger } = deps;
  const pruned = new Counter({ name: 'scheduler_pruned_rows_total', help: 'Finished bookkeeping rows deleted by retention, by table', labelNames: ['table'], registers: [deps.registry] });
  let running: Promise<unknown> | undefined;
  let stopped = true;

  const runOnce = async (): Promise<Pruned> => {
    const result = await pruneOnce(db, clock.now(), config.current().retention);
    for (const [table, n] of Object.entries(result)) if (n) pruned.inc({ table }, n);
    if (Object.values(result).some((n) => n > 0)) logger.info({ pruned: result }, 'old bookkeeping pruned');
    return result;
  };

  const timer = createPeriodTimer(clock, () => config.current().retention.interval.ms, () => {
    running = runOnce()
      .catch((error: unknown) => logger.warn({ err: coerceError(error) }, 'pruning failed; trying again next interval'))
      .finally(() => {
        running = undefined;
        if (!stopped) timer.arm();
      });
  }, (listener) => config.onChange(listener));

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      timer.arm();
    },
    async stop() {
      stopped = true;
      timer.clear();
      await running;
    },
    async idle() {
      await running;
    },
  };
}
