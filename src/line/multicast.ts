import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import { fromJson, toOptionalDate } from '../db/row.ts';
import type { MulticastState } from '../db/tables.ts';
import { inTransaction } from '../db/transaction.ts';
import { invalid, notFound } from '../errors.ts';
import { getSendTargets, type SendTarget } from './members.ts';
import { describeProblems, LIMITS, messageProblems, outMessagesSchema, type OutMessage } from './messages.ts';

/**
 * Multicast: one request for up to 500 members of one channel who get the identical message. Each
 * chunk is stored with its member set, its messages and a retry key before the first attempt, so
 * every retry sends the same request under the same key and nobody can receive it twice.
 */
export interface MulticastRecipient {
  memberId: number;
  /** The delivery this recipient's message settles (issue 5), if any. */
  deliveryId?: number | null;
}

export interface ChunkPlan {
  chunks: MulticastRecipient[][];
  skipped: (MulticastRecipient & { reason: string })[];
}

/** Splits recipients into chunks of at most `size` (pure): unfollowed members and repeats are left out. */
export function planChunks(recipients: readonly MulticastRecipient[], targets: ReadonlyMap<number, SendTarget>, size: number = LIMITS.multicastRecipients): ChunkPlan {
  const seen = new Set<number>();
  const keep: MulticastRecipient[] = [];
  const skipped: ChunkPlan['skipped'] = [];
  for (const recipient of recipients) {
    if (seen.has(recipient.memberId)) {
      skipped.push({ ...recipient, reason: 'the member appears more than once' });
      continue;
    }
    seen.add(recipient.memberId);
    if (targets.get(recipient.memberId)?.following === 'unfollowed') skipped.push({ ...recipient, reason: 'the student unfollowed (blocked) the LINE account' });
    else keep.push(recipient);
  }
  const chunks: MulticastRecipient[][] = [];
  for (let i = 0; i < keep.length; i += size) chunks.push(keep.slice(i, i + size));
  return { chunks, skipped };
}

export interface CreatedChunks {
  chunks: { id: number; retryKey: string; memberIds: number[] }[];
  skipped: (MulticastRecipient & { reason: string })[];
}

/** Stores the chunks (member sets, messages, retry keys) in one transaction; nothing is sent yet. */
export async function createMulticastChunks(
  db: Db,
  clock: Clock,
  input: { channelId: number; recipients: readonly MulticastRecipient[]; messages: OutMessage[] },
): Promise<CreatedChunks> {
  const problems = messageProblems(input.messages);
  if (problems.length) throw invalid('messages', describeProblems(problems));
  const targets = new Map((await getSendTargets(db, input.recipients.map((r) => r.memberId))).map((t) => [t.memberId, t]));
  for (const r of input.recipients) {
    const target = targets.get(r.memberId);
    if (!target) throw notFound(`member ${r.memberId} not found`, 'recipients');
    if (target.channelId !== input.channelId) throw invalid('recipients', `member ${r.memberId} belongs to another channel (a multicast goes through one channel)`);
  }
  const plan = planChunks(input.recipients, targets);
  const now = clock.now();
  const chunks = await inTransaction(db, async (trx) => {
    const out: CreatedChunks['chunks'] = [];
    for (const members of plan.chunks) {
      const retryKey = randomUUID();
      const row = await trx
        .insertInto('line_multicasts')
        .values({ channel_id: input.channelId, retry_key: retryKey, messages: JSON.stringify(input.messages), state: 'pending', attempts: 0, created_at: now, updated_at: now })
        .returning('id')
        .executeTakeFirstOrThrow();
      await trx
        .insertInto('line_multicast_members')
        .values(members.map((m) => ({ multicast_id: row.id, member_id: m.memberId, delivery_id: m.deliveryId ?? null })))
        .execute();
      out.push({ id: row.id, retryKey, memberIds: members.map((m) => m.memberId) });
    }
    return out;
  });
  return { chunks, skipped: plan.skipped };
}

export interface MulticastChunk {
  id: number;
  channelId: number;
  retryKey: string;
  messages: OutMessage[];
  state: MulticastState;
  attempts: number;
  firstAttemptAt: Date | null;
  sentAt: Date | null;
  lineRequestId: string | null;
  acceptedRequestId: string | null;
  lastError: string | null;
  lineUserIds: string[];
}

/**
 * A stored chunk. `owedOnly`: only the members whose delivery is still owed (pending or being sent),
 * for the engine's resend: a student whose booking was cancelled, or whose delivery was moved to a
 * new time (and so left the chunk), since the first attempt is left out.
 */
export async function getMulticastChunk(db: Db, id: number, options: { owedOnly?: boolean } = {}): Promise<MulticastChunk> {
  const row = await db.selectFrom('line_multicasts').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw notFound(`multicast chunk ${id} not found`, 'id');
  let members = db
    .selectFrom('line_multicast_members')
    .innerJoin('members', 'members.id', 'line_multicast_members.member_id')
    .select('members.line_user_id')
    .where('line_multicast_members.multicast_id', '=', id);
  if (options.owedOnly) {
    members = members.innerJoin('deliveries', 'deliveries.id', 'line_multicast_members.delivery_id').where('deliveries.state', 'in', ['pending', 'sending']);
  }
  const memberRows = await members.orderBy('members.id').execute();
  return {
    id: row.id,
    channelId: row.channel_id,
    retryKey: row.retry_key,
    messages: outMessagesSchema.parse(fromJson(row.messages)),
    state: row.state,
    attempts: row.attempts,
    firstAttemptAt: toOptionalDate(row.first_attempt_at),
    sentAt: toOptionalDate(row.sent_at),
    lineRequestId: row.line_request_id,
    acceptedRequestId: row.accepted_request_id,
    lastError: row.last_error,
    lineUserIds: memberRows.map((m) => m.line_user_id),
  };
}
