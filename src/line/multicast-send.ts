import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { valuesTable } from '../db/row.ts';
import { coerceError } from '../errors.ts';
import type { OutMessage } from './messages.ts';
import type { LineCall } from './client.ts';
import type { SendOutcome } from './outcomes.ts';
import { callAndSettle, channelGate, checkRequest, type SendDeps } from './send.ts';
import { getMulticastChunk } from './multicast.ts';
import { dropUnsentChunk, storeNewChunks, type NewChunk, type NewMulticast, type StoredChunks } from './multicast-store.ts';

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

export function multicastCall(to: readonly string[], messages: readonly OutMessage[], retryKey: string): LineCall {
  return { method: 'POST', path: '/v2/bot/message/multicast', body: { to, messages }, retryKey };
}

export async function settleChunk(deps: SendDeps, id: number, outcome: SendOutcome): Promise<SendOutcome> {
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
  const v = valuesTable(db, [['id', 'id'], ['rid', 'text'], ['acc', 'text'], ['at', 'instant']], chunks.map((c) => [c.id, c.requestId, c.acceptedRequestId, c.at]));
  await sql`
    update line_multicasts set state = 'sent', sent_at = v.at, line_request_id = v.rid, accepted_request_id = v.acc, last_error = null, updated_at = v.at
    from ${v}
    where line_multicasts.id = v.id`.execute(db);
}

/**
 * The delivery engine's fast path for new chunks whose recipients it has just checked: every chunk
 * of a page (retry key, member set) is stored first, as its first attempt, in one or two statements
 * for the page, and each comes back as the call that sends it. At the peak a statement per chunk was
 * 6,500 round trips. A crash before a call leaves a stored, unsent chunk; the engine's resend of
 * those deliveries finds it and sends it with the same key. A chunk LINE would refuse, or for a
 * channel that may not send now, is not stored: its call only reports why.
 *
 * `leaseToken` (the engine's claim; every caller has one, so no chunk is ever stored unfenced): a
 * member goes into a chunk only while its delivery still carries that lease, checked in the
 * statement that stores the chunk, with the delivery rows locked. A worker that lost its lease
 * before storing (it stalled; another took the deliveries over, found no chunk and pushed each
 * under the delivery's own key) stores nothing for those deliveries and sends nothing to them: a
 * new key for them would deliver twice.
 */
export async function prepareNewMulticasts(deps: SendDeps, inputs: readonly NewMulticast[], leaseToken: string): Promise<(() => Promise<SendOutcome>)[]> {
  const { db, clock } = deps;
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

/** A chunk that could not be stored is tried again this much later (as a send that threw would be). */
const STORE_RETRY_MS = 5000;
