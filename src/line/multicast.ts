import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { sql } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { fromJson, inIds, toOptionalDate } from '../db/row.ts';
import type { MulticastState } from '../db/tables.ts';
import { chunked, inTransaction } from '../db/transaction.ts';
import { coerceError, invalid, notFound } from '../errors.ts';
import { getSendTargets, type SendTarget } from './members.ts';
import { describeProblems, LIMITS, messageProblems, outMessagesSchema, type OutMessage } from './messages.ts';
import type { LineCall } from './client.ts';
import type { SendOutcome } from './outcomes.ts';
import { callAndSettle, channelGate, checkRequest, type SendDeps } from './send.ts';

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

/**
 * Sends one stored chunk (again, if an earlier attempt did not settle it) and records the outcome
 * on the chunk. A chunk already sent or failed is not sent again. `owedOnly` (the engine's resend):
 * to the members still owed it, under the same key: if LINE took the first attempt it answers 409
 * (everyone got it then); if not, only those still owed it get it now.
 */
export async function sendMulticastChunk(deps: SendDeps, chunkId: number, options: { owedOnly?: boolean } = {}): Promise<SendOutcome> {
  const { db, clock } = deps;
  const chunk = await getMulticastChunk(db, chunkId, options);
  if (chunk.state === 'sent') return { kind: 'duplicate', requestId: null, acceptedRequestId: chunk.acceptedRequestId ?? chunk.lineRequestId, recorded: true };
  if (chunk.state === 'failed') return { kind: 'final', reason: chunk.lastError ?? 'failed earlier', status: null, requestId: null };
  if (chunk.lineUserIds.length === 0) return { kind: 'skipped', reason: 'no member of the multicast chunk is owed it any more' };
  const early = checkRequest(clock, chunk.retryKey, chunk.messages, chunk.firstAttemptAt);
  if (early) return settleChunk(deps, chunk.id, early);
  const gate = await channelGate(deps, chunk.channelId);
  if ('outcome' in gate) return settleChunk(deps, chunk.id, gate.outcome);
  const attempt = chunk.attempts + 1;
  // Counted before the call: a crash during it still leaves the first-attempt time for the 24 h window.
  await db
    .updateTable('line_multicasts')
    .set({ attempts: attempt, first_attempt_at: chunk.firstAttemptAt ?? clock.now(), updated_at: clock.now() })
    .where('id', '=', chunk.id)
    .execute();
  const outcome = await callAndSettle(deps, gate.channel, 'multicast', attempt, multicastCall(chunk.lineUserIds, chunk.messages, chunk.retryKey));
  return settleChunk(deps, chunk.id, outcome);
}

function multicastCall(to: readonly string[], messages: readonly OutMessage[], retryKey: string): LineCall {
  return { method: 'POST', path: '/v2/bot/message/multicast', body: { to, messages }, retryKey };
}

async function settleChunk(deps: SendDeps, id: number, outcome: SendOutcome): Promise<SendOutcome> {
  const { db, clock } = deps;
  const now = clock.now();
  const base = db.updateTable('line_multicasts').where('id', '=', id);
  if (outcome.kind === 'sent' || outcome.kind === 'duplicate') {
    const sent: SentChunk = { id, requestId: outcome.requestId, acceptedRequestId: outcome.kind === 'sent' ? outcome.requestId : outcome.acceptedRequestId, at: now };
    // Group-committed: a settle lost to a crash only means a resend under the same retry key (409).
    await (deps.sentChunks ? deps.sentChunks.add(sent) : markChunksSent(db, [sent]));
  } else if (outcome.kind === 'final' || outcome.kind === 'skipped') {
    await base.set({ state: 'failed', last_error: outcome.reason, updated_at: now }).execute();
  } else {
    await base.set({ last_error: outcome.reason, updated_at: now }).execute();
  }
  return outcome;
}

export interface SentChunk {
  id: number;
  requestId: string | null;
  acceptedRequestId: string | null;
  /** When LINE accepted it, not when this write happens. */
  at: Date;
}

/** Marks chunks sent, many in one statement. */
export async function markChunksSent(db: Db, chunks: readonly SentChunk[]): Promise<void> {
  if (chunks.length === 0) return;
  const postgres = dialectOf(db) === 'postgres';
  const idType = postgres ? sql`bigint` : sql`integer`;
  const at = postgres ? sql`cast(column4 as timestamptz)` : sql`column4`;
  const rows = sql.join(chunks.map((c) => sql`(${c.id}, ${c.requestId}, ${c.acceptedRequestId}, ${c.at})`));
  await sql`
    update line_multicasts set state = 'sent', sent_at = v.at, line_request_id = v.rid, accepted_request_id = v.acc, last_error = null, updated_at = v.at
    from (select cast(column1 as ${idType}) as id, column2 as rid, column3 as acc, ${at} as at from (values ${rows}) as t) as v
    where line_multicasts.id = v.id`.execute(db);
}

export interface NewMulticast {
  channelId: number;
  recipients: readonly { memberId: number; deliveryId: number; lineUserId: string }[];
  messages: OutMessage[];
}

/**
 * The delivery engine's fast path for new chunks whose recipients it has just checked: every chunk
 * of a page (retry key, member set) is stored first, as its first attempt, in one or two statements
 * for the page, and each comes back as the call that sends it. At the peak a statement per chunk was
 * 6,500 round trips. A crash before a call leaves a stored, unsent chunk; the engine's resend of
 * those deliveries finds it and sends it with the same key. A chunk LINE would refuse, or for a
 * channel that may not send now, is not stored: its call only reports why.
 *
 * `leaseToken` (the engine's claim): a member goes into a chunk only while its delivery still carries
 * that lease, checked in the statement that stores the chunk, with the delivery rows locked. A worker
 * that lost its lease before storing (it stalled; another took the deliveries over, found no chunk
 * and pushed each under the delivery's own key) stores nothing for those deliveries and sends
 * nothing to them: a new key for them would deliver twice.
 */
export async function prepareNewMulticasts(deps: SendDeps, inputs: readonly NewMulticast[], options: { leaseToken?: string } = {}): Promise<(() => Promise<SendOutcome>)[]> {
  const { db, clock } = deps;
  const { leaseToken } = options;
  // Why a channel may not send now (null: it may), asked once per channel for the page.
  const refusals = new Map<number, SendOutcome | null>();
  const refusalOf = async (channelId: number): Promise<SendOutcome | undefined> => {
    if (!refusals.has(channelId)) {
      const gate = await channelGate(deps, channelId);
      refusals.set(channelId, 'outcome' in gate ? gate.outcome : null);
    }
    return refusals.get(channelId) ?? undefined;
  };
  const calls: (() => Promise<SendOutcome>)[] = [];
  const toStore: { index: number; chunk: NewChunk }[] = [];
  for (const [index, input] of inputs.entries()) {
    const retryKey = randomUUID();
    const refused = checkRequest(clock, retryKey, input.messages, null) ?? (await refusalOf(input.channelId));
    if (refused) {
      calls[index] = () => Promise.resolve(refused);
      continue;
    }
    toStore.push({ index, chunk: { channelId: input.channelId, retryKey, messages: input.messages, recipients: input.recipients } });
  }
  const now = clock.now();
  const chunks = toStore.map((t) => t.chunk);
  const stored: StoredChunks = await storeNewChunks(db, now, chunks, leaseToken).catch((error: unknown) => {
    // One bad chunk must not hold back the page: each is stored on its own, and one that still
    // fails is tried again later (its deliveries then go by their own path).
    deps.logger.warn({ err: coerceError(error), chunks: chunks.length }, 'storing a page of multicast chunks failed; storing them one by one');
    return Promise.all(chunks.map((chunk) => storeNewChunks(db, now, [chunk], leaseToken).then((one) => one, (e: unknown) => ({ ids: [coerceError(e)], lost: new Set<number>() })))).then((each) => ({
      ids: each.map((one) => one.ids[0]),
      lost: new Set(each.flatMap((one) => [...one.lost])),
    }));
  });
  if (stored.lost.size) deps.logger.warn({ deliveries: [...stored.lost] }, 'lease lost before the multicast chunk was stored: nothing stored or sent for these deliveries; their newer holder sends them (fencing)');
  for (const [i, { index, chunk }] of toStore.entries()) {
    const id = stored.ids[i];
    if (id === null) {
      calls[index] = () => Promise.resolve(LEASE_LOST);
      continue;
    }
    if (typeof id !== 'number') {
      const outcome: SendOutcome = { kind: 'retryable', afterMs: STORE_RETRY_MS, reason: `could not store the multicast chunk: ${id?.message ?? 'not stored'}`, requestId: null };
      calls[index] = () => Promise.resolve(outcome);
      continue;
    }
    // Only the members stored with the chunk (those whose delivery was still ours) are sent it.
    const to = chunk.recipients.filter((r) => !stored.lost.has(r.deliveryId)).map((r) => r.lineUserId);
    calls[index] = async () => {
      // Checked again when the chunk goes out: a channel disabled or paused since the page was
      // prepared holds it. The chunk was never sent, so it is dropped; its deliveries wait as first
      // attempts and go out later in a new chunk.
      const gate = await channelGate(deps, chunk.channelId);
      if ('outcome' in gate) {
        await dropUnsentChunk(db, id, leaseToken);
        return gate.outcome;
      }
      const outcome = await callAndSettle(deps, gate.channel, 'multicast', 1, multicastCall(to, chunk.messages, chunk.retryKey));
      // LINE refused the chunk's first request for the whole channel (a rejected token, the monthly
      // quota): it was not accepted, and its deliveries go back as first attempts (the attempt is
      // not counted). Left stored, it would still be each member's chunk: a student sent later by
      // push and then retried would be resent this never-accepted chunk, under its key, a second time.
      if (outcome.kind === 'channelPaused') {
        await dropUnsentChunk(db, id, leaseToken);
        return outcome;
      }
      return settleChunk(deps, id, outcome);
    };
  }
  return calls;
}

/** What a chunk whose deliveries were all taken over gets: the newer holder decides (fenced out anyway). */
const LEASE_LOST: SendOutcome = { kind: 'retryable', afterMs: 0, reason: 'lease lost before the multicast chunk was stored: the newer holder sends it', requestId: null };

/**
 * A new chunk that never went out (never accepted by LINE) is let go by the deliveries this worker
 * still holds (`leaseToken`), locked while it does so; the chunk itself goes once no member is left.
 * A delivery another worker took over meanwhile keeps it: that worker may be resending it under its
 * key. Without a token the chunk is dropped whole.
 */
async function dropUnsentChunk(db: Db, id: number, leaseToken: string | undefined): Promise<void> {
  if (leaseToken === undefined) {
    await db.deleteFrom('line_multicasts').where('id', '=', id).where('state', '=', 'pending').execute();
    return;
  }
  await inTransaction(db, async (trx) => {
    let mine = trx
      .selectFrom('deliveries')
      .select('deliveries.id')
      .where('deliveries.lease_token', '=', leaseToken)
      .where('deliveries.id', 'in', (eb) => eb.selectFrom('line_multicast_members').select('delivery_id').where('multicast_id', '=', id));
    if (dialectOf(trx) === 'postgres') mine = mine.forUpdate();
    const ids = (await mine.execute()).map((r) => r.id);
    for (const part of chunked(ids)) await trx.deleteFrom('line_multicast_members').where('multicast_id', '=', id).where('delivery_id', 'in', part).execute();
    await trx
      .deleteFrom('line_multicasts')
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .where((eb) => eb.not(eb.exists(eb.selectFrom('line_multicast_members').select('member_id').where('multicast_id', '=', id).where('delivery_id', 'is not', null))))
      .execute();
  });
}

/** A chunk that could not be stored is tried again this much later (as a send that threw would be). */
const STORE_RETRY_MS = 5000;

interface NewChunk extends NewMulticast {
  retryKey: string;
}

/**
 * Per chunk (input order): its id; null when none of its deliveries still carries the lease (nothing
 * stored); an Error when it could not be stored. `lost`: the deliveries left out, no longer ours.
 */
interface StoredChunks {
  ids: (number | null | Error | undefined)[];
  lost: Set<number>;
}

/**
 * The chunks and their member sets, as their first attempt. On PostgreSQL one statement (a
 * data-modifying CTE); on SQLite, where a statement costs no network round trip, one multi-row insert
 * for the chunks and one for their members. With `leaseToken`, fenced: in the same transaction the
 * deliveries are locked and only those still carrying the token are stored as members; a chunk with
 * none left is not stored at all.
 */
async function storeNewChunks(db: Db, now: Date, chunks: readonly NewChunk[], leaseToken: string | undefined): Promise<StoredChunks> {
  if (chunks.length === 0) return { ids: [], lost: new Set() };
  const byKey = new Map<string, number>();
  const lost = new Set<number>();
  if (dialectOf(db) === 'postgres') {
    const members = chunks.flatMap((c) => c.recipients.map((r) => [c.retryKey, r.memberId, r.deliveryId] as const));
    const deliveryIds = members.map((m) => m[2]);
    // The fence: the page's deliveries still ours, locked until this statement commits (a claim
    // taking them over either went first, and they are not ours, or waits: SKIP LOCKED passes them).
    const owned = leaseToken === undefined ? sql`select unnest(${deliveryIds}::bigint[]) as id` : sql`select id from deliveries where id = any(${deliveryIds}::bigint[]) and lease_token = ${leaseToken} for update`;
    const result = await sql<{ id: number | string | null; retry_key: string | null; lost: number | string | null }>`
      with owned as (${owned}), wanted as (
        select r.retry_key, r.member_id, r.delivery_id
        from unnest(${members.map((m) => m[0])}::text[], ${members.map((m) => m[1])}::bigint[], ${deliveryIds}::bigint[]) as r(retry_key, member_id, delivery_id)
        where r.delivery_id in (select id from owned)
      ), chunk as (
        insert into line_multicasts (channel_id, retry_key, messages, state, attempts, first_attempt_at, created_at, updated_at)
        select c.channel_id, c.retry_key, c.messages::jsonb, 'pending', 1, ${now}, ${now}, ${now}
        from unnest(${chunks.map((c) => c.channelId)}::bigint[], ${chunks.map((c) => c.retryKey)}::text[], ${chunks.map((c) => JSON.stringify(c.messages))}::text[]) as c(channel_id, retry_key, messages)
        where exists (select 1 from wanted w where w.retry_key = c.retry_key)
        returning id, retry_key
      ), members as (
        insert into line_multicast_members (multicast_id, member_id, delivery_id)
        select chunk.id, w.member_id, w.delivery_id
        from chunk join wanted w on w.retry_key = chunk.retry_key
      )
      select id, retry_key, null::bigint as lost from chunk
      union all
      select null, null, d.id from unnest(${deliveryIds}::bigint[]) as d(id) where d.id not in (select id from owned)`.execute(db);
    for (const row of result.rows) {
      if (row.retry_key !== null && row.id !== null) byKey.set(row.retry_key, Number(row.id));
      else if (row.lost !== null) lost.add(Number(row.lost));
    }
  } else {
    // In one transaction: a failure leaves no chunk without its members.
    await inTransaction(db, async (tx) => {
      if (leaseToken !== undefined) {
        const ids = chunks.flatMap((c) => c.recipients.map((r) => r.deliveryId));
        const ours = new Set<number>();
        for (const part of chunked(ids, 10_000)) {
          const rows = await tx.selectFrom('deliveries').select('id').where(inIds(tx, 'id', part)).where('lease_token', '=', leaseToken).execute();
          for (const r of rows) ours.add(r.id);
        }
        for (const id of ids) if (!ours.has(id)) lost.add(id);
      }
      const kept = chunks.filter((c) => c.recipients.some((r) => !lost.has(r.deliveryId)));
      for (const part of chunked(kept, 1000)) {
        const rows = await tx
          .insertInto('line_multicasts')
          .values(part.map((c) => ({ channel_id: c.channelId, retry_key: c.retryKey, messages: JSON.stringify(c.messages), state: 'pending' as const, attempts: 1, first_attempt_at: now, created_at: now, updated_at: now })))
          .returning(['id', 'retry_key'])
          .execute();
        for (const row of rows) byKey.set(row.retry_key, row.id);
      }
      const members = kept.flatMap((c) => c.recipients.filter((r) => !lost.has(r.deliveryId)).map((r) => ({ multicast_id: byKey.get(c.retryKey) ?? 0, member_id: r.memberId, delivery_id: r.deliveryId })));
      for (const part of chunked(members, 5000)) await tx.insertInto('line_multicast_members').values(part).execute();
    });
  }
  return {
    ids: chunks.map((c) => {
      const id = byKey.get(c.retryKey);
      if (id !== undefined) return id;
      if (c.recipients.every((r) => lost.has(r.deliveryId))) return null;
      throw new Error(`multicast chunk ${c.retryKey} was not stored`);
    }),
    lost,
  };
}
