import type { Db } from '../db/database.ts';
import { createGroupCommit } from '../db/group-commit.ts';
import type { ApiResult } from './client.ts';

/**
 * The log of LINE API calls. LINE keeps no logs and answers support questions only by
 * x-line-request-id, so each call that did not simply succeed is kept (every call with
 * `line.requestLog: all`): time, endpoint, status, request ids, outcome, reason.
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

/** The call log, written by group commit: a few inserts per second however many calls. */
export interface RequestLog {
  record(record: LineRequestRecord): Promise<void>;
}

export function createRequestLog(db: Db): RequestLog {
  const log = createGroupCommit<LineRequestRecord>((batch) => recordLineRequests(db, batch));
  return { record: (record) => log.add(record) };
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
