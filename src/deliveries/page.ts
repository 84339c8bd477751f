import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { SendOutcome } from '../line/outcomes.ts';
import { complete, completeSent, type ClaimedDelivery, type Completion } from './claim.ts';
import type { DeliveryMetrics } from './metrics.ts';

/** What one claim-and-send did. */
export interface PageReport {
  claimed: number;
  byState: Record<string, number>;
  /** The earliest instant (ms) a delivery of this page was put back to be retried, if any. */
  nextRetryAt?: number;
}

/** What one round did: its pages, and what it expired first. */
export interface DrainReport extends PageReport {
  expired: number;
}

/** A sent outcome waiting to be written with the page's others. */
interface SentEntry {
  id: number;
  requestId: string | null;
  note: string | null;
  /** When LINE accepted it (the lateness metric runs from the due time to this). */
  sentAt: Date;
  /** LINE answered 409: a duplicate prevented, counted once the write lands. */
  duplicate: boolean;
}

/** One claim being processed: its lease token, its report, due times, and sent outcomes not written yet. */
export interface Page {
  token: string;
  report: PageReport;
  due: Map<number, Date>;
  sent: SentEntry[];
}

export function newPage(claimed: readonly ClaimedDelivery[], token: string, report: PageReport): Page {
  return { token, report, due: new Map(claimed.map((d) => [d.id, d.dueAt])), sent: [] };
}

/** What a send's outcome makes of its deliveries. `pausedRetryMs`: read only for a pause with no known end. */
export function completionOf(o: SendOutcome, now: Date, pausedRetryMs: () => number): Completion {
  switch (o.kind) {
    case 'sent':
      return { state: 'sent', requestId: o.requestId };
    case 'duplicate':
      return {
        state: 'sent',
        requestId: o.acceptedRequestId ?? o.requestId,
        note: o.recorded ? 'its multicast chunk went out earlier (recorded): not sent again' : 'LINE had already accepted this retry key (409): not sent twice',
      };
    case 'retryable':
      return { state: 'pending', afterMs: o.afterMs, reason: o.reason };
    case 'channelPaused':
      return { state: 'pending', afterMs: o.until ? Math.max(1000, o.until.getTime() - now.getTime()) : pausedRetryMs(), reason: o.reason, countAttempt: false };
    case 'final':
      return { state: 'failed', reason: o.reason };
    case 'skipped':
      return { state: 'skipped', reason: o.reason };
  }
}

export interface PageWriter {
  /** Records what became of these deliveries. `duplicate`: LINE answered 409 for these (it was asked, and had accepted the key before). */
  settle(ids: readonly number[], page: Page, c: Completion, duplicate?: boolean): Promise<void>;
  /** Writes the page's sent outcomes not written yet. */
  flushSent(page: Page): Promise<void>;
}

/** The page's writes, fenced on its lease token, and what they count. */
export function createPageWriter(deps: { db: Db; clock: Clock; logger: Logger; metrics: DeliveryMetrics }): PageWriter {
  const { db, clock, logger, metrics } = deps;

  /**
   * Counts what a write actually changed: only rows still under this claim's lease are written
   * (fencing), so a sender that lost its lease counts nothing and the newer holder counts once. The
   * page's report, the outcome counter, lateness and duplicates prevented all go by these rows.
   */
  const counted = (page: Page, c: Completion, n: number): void => {
    if (n === 0) return;
    metrics.outcomes.inc({ state: c.state }, n);
    page.report.byState[c.state] = (page.report.byState[c.state] ?? 0) + n;
    if (c.state === 'pending') page.report.nextRetryAt = Math.min(page.report.nextRetryAt ?? Infinity, clock.now().getTime() + c.afterMs);
  };

  // Sent outcomes of a page are written together (one statement per flush); others one by one.
  const flushSent = async (page: Page): Promise<void> => {
    const buffer = page.sent;
    if (!buffer.length) return;
    page.sent = [];
    const written = new Set(await completeSent(db, clock, page.token, buffer));
    if (written.size < buffer.length) {
      // LINE accepted these; the request ids are what a support inquiry needs, so they are logged here.
      logger.warn({ lost: buffer.length - written.size, sent: buffer.map((b) => ({ delivery: b.id, requestId: b.requestId })) }, 'lease lost before completion; the newer holder decides (fencing)');
    }
    counted(page, { state: 'sent', requestId: null }, written.size);
    // Lateness and duplicates prevented only for the rows this write changed (fencing).
    for (const b of buffer.filter((e) => written.has(e.id))) {
      const due = page.due.get(b.id);
      if (due) metrics.lateness.observe(Math.max(0, b.sentAt.getTime() - due.getTime()) / 1000);
      // Per student whose message LINE's 409 kept from going out twice (a multicast's 409 covers its whole chunk).
      if (b.duplicate) metrics.duplicatesPrevented.inc();
    }
  };

  const settle = async (ids: readonly number[], page: Page, c: Completion, duplicate = false): Promise<void> => {
    if (c.state === 'sent') {
      const sentAt = clock.now();
      for (const id of ids) page.sent.push({ id, requestId: c.requestId, note: c.note ?? null, sentAt, duplicate });
      if (page.sent.length >= 200) await flushSent(page);
      return;
    }
    const n = await complete(db, clock, ids, page.token, c);
    if (n < ids.length) logger.warn({ ids, state: c.state }, 'lease lost before completion; the newer holder decides (fencing)');
    counted(page, c, n);
  };

  return { settle, flushSent };
}
