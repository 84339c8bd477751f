import type { Db } from '../db/database.ts';
import type { ApiResult } from './client.ts';

/**
 * The log of LINE API calls. LINE keeps no logs and answers support questions only by
 * x-line-request-id, so every call is kept: time, endpoint, status, request ids, outcome.
 */
export interface LineRequestRecord {
  channelId: number;
  endpoint: string;
  retryKey: string | null;
  result: ApiResult<unknown>;
  outcome: string;
  error: string | null;
  startedAt: Date;
  durationMs: number;
}

export async function recordLineRequests(db: Db, records: readonly LineRequestRecord[]): Promise<void> {
  if (records.length === 0) return;
  await db
    .insertInto('line_requests')
    .values(
      records.map((record) => {
        const { result } = record;
        const answered = result.kind === 'response';
        return {
          channel_id: record.channelId,
          endpoint: record.endpoint,
          retry_key: record.retryKey,
          status: answered ? result.status : null,
          request_id: answered ? result.requestId : null,
          accepted_request_id: answered ? result.acceptedRequestId : null,
          outcome: record.outcome,
          error: record.error,
          started_at: record.startedAt,
          duration_ms: Math.round(record.durationMs),
        };
      }),
    )
    .execute();
}

/**
 * Group commit for the log: calls recorded while a write is in flight go out together in the next
 * one. Each `record` resolves once its row is stored, so nothing is lost by batching, and at LINE's
 * full rate the log costs a few inserts per second instead of one per call.
 */
export interface RequestLog {
  record(record: LineRequestRecord): Promise<void>;
}

export function createRequestLog(db: Db): RequestLog {
  const queue: { record: LineRequestRecord; resolve: () => void; reject: (error: unknown) => void }[] = [];
  let writing = false;
  const drain = async (): Promise<void> => {
    writing = true;
    // Let the calls finishing in this turn of the event loop join the batch (SQLite answers so fast
    // that otherwise every record would be a batch of one).
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (queue.length > 0) {
      const batch = queue.splice(0, 200);
      try {
        await recordLineRequests(db, batch.map((b) => b.record));
        for (const b of batch) b.resolve();
      } catch (error) {
        for (const b of batch) b.reject(error);
      }
    }
    writing = false;
  };
  return {
    record(record) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ record, resolve, reject });
        if (!writing) void drain();
      });
    },
  };
}

export interface LineRequestRow {
  endpoint: string;
  retryKey: string | null;
  status: number | null;
  requestId: string | null;
  acceptedRequestId: string | null;
  outcome: string;
  error: string | null;
}

/** The calls made with one retry key, oldest first (what happened to one delivery or chunk). */
export async function lineRequestsForKey(db: Db, retryKey: string): Promise<LineRequestRow[]> {
  const rows = await db.selectFrom('line_requests').selectAll().where('retry_key', '=', retryKey).orderBy('id').execute();
  return rows.map((r) => ({
    endpoint: r.endpoint,
    retryKey: r.retry_key,
    status: r.status,
    requestId: r.request_id,
    acceptedRequestId: r.accepted_request_id,
    outcome: r.outcome,
    error: r.error,
  }));
}
