import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { fullJitterDelay } from '../retry.ts';
import { pauseLineChannel } from './channels.ts';
import type { ApiResult, LineCall, LineClient } from './client.ts';
import { getSendTargets, type SendTarget } from './members.ts';
import { describeProblems, messageProblems, type OutMessage } from './messages.ts';
import { classifySend, type SendOutcome } from './outcomes.ts';
import type { ChannelPool, PoolChannel } from './pool.ts';
import type { GroupCommit } from '../db/group-commit.ts';
import type { SentChunk } from './multicast-send.ts';
import type { RateEndpoint, RateLimiter } from './rate-limiter.ts';
import type { RequestLog } from './requests.ts';

/** What sending needs; built once in the composition root. */
export interface SendDeps {
  db: Db;
  clock: Clock;
  config: ConfigStore;
  logger: Logger;
  pool: ChannelPool;
  /** The Messaging API over HTTP. */
  api: LineClient;
  limiter: RateLimiter;
  requestLog: RequestLog;
  /** Sent multicast chunks, group-committed (absent: each is written at once). */
  sentChunks?: GroupCommit<SentChunk>;
  /** Jitter source (tests pin it). */
  random?: () => number;
}

/**
 * LINE forgets a retry key 24 h after accepting it; past that a retry could deliver twice. Stop an
 * hour short, whatever the caller's own expiry says.
 */
export const RETRY_KEY_WINDOW_MS = 23 * 60 * 60 * 1000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface PushRequest {
  memberId: number;
  /** X-Line-Retry-Key: fixed and stored before the first attempt (deliveries.retry_key); the same on every attempt. */
  retryKey: string;
  messages: OutMessage[];
  /** 1 for the first attempt; drives the backoff. */
  attempt: number;
  /** When the first attempt was made, to stay inside LINE's dedup window. */
  firstAttemptAt?: Date | null;
  /** The member as the caller just read it (the delivery engine has); saves a query per push. */
  target?: SendTarget;
}

/**
 * Pushes to one member with a stored retry key and says what happened. Never throws for LINE's
 * answers; a repeated call after a timeout, 5xx or crash can only ever reach the student once.
 */
export async function sendPush(deps: SendDeps, request: PushRequest): Promise<SendOutcome> {
  const early = checkRequest(deps.clock, request.retryKey, request.messages, request.firstAttemptAt ?? null);
  if (early) return early;
  const target = request.target ?? (await getSendTargets(deps.db, [request.memberId]))[0];
  if (!target) return final(`member ${request.memberId} not found`);
  if (target.following === 'unfollowed') return { kind: 'skipped', reason: 'the student unfollowed (blocked) the LINE account' };
  const gate = await channelGate(deps, target.channelId);
  if ('outcome' in gate) return gate.outcome;
  const { channel } = gate;
  return callAndSettle(deps, channel, 'push', request.attempt, {
    method: 'POST',
    path: '/v2/bot/message/push',
    body: { to: target.lineUserId, messages: request.messages },
    retryKey: request.retryKey,
  });
}

/** Checks that need no I/O: a bad key, a stale key or a message LINE would refuse end here. */
export function checkRequest(clock: Clock, retryKey: string, messages: readonly OutMessage[], firstAttemptAt: Date | null): SendOutcome | undefined {
  if (!UUID.test(retryKey)) return final(`retry key "${retryKey}" is not a UUID (LINE refuses it)`);
  if (firstAttemptAt && clock.now().getTime() - firstAttemptAt.getTime() > RETRY_KEY_WINDOW_MS) {
    return final('first attempt over 23 h ago: LINE may have forgotten the retry key, so another attempt could deliver twice');
  }
  const problems = problemsOf(messages);
  if (problems) return final(`message breaks LINE's limits: ${problems}`);
  return undefined;
}

/** A class's students share one messages array: check it once, not once per push. */
const checked = new WeakMap<readonly OutMessage[], string>();
function problemsOf(messages: readonly OutMessage[]): string {
  let problems = checked.get(messages);
  if (problems === undefined) {
    const found = messageProblems(messages);
    problems = found.length ? describeProblems(found) : '';
    checked.set(messages, problems);
  }
  return problems;
}

/** The channel if it may send now; otherwise why not. */
export async function channelGate(deps: SendDeps, channelId: number): Promise<{ channel: PoolChannel } | { outcome: SendOutcome }> {
  const channel = await deps.pool.byId(channelId);
  if (!channel) return { outcome: final(`LINE channel ${channelId} not found`) };
  if (!channel.enabled) return { outcome: { kind: 'channelPaused', until: null, reason: `LINE channel ${channel.slug} is disabled` } };
  if (channel.pausedUntil && channel.pausedUntil.getTime() > deps.clock.now().getTime()) {
    return { outcome: { kind: 'channelPaused', until: channel.pausedUntil, reason: channel.pauseReason ?? 'paused' } };
  }
  return { channel };
}

/**
 * Waits for a token, makes the call under the configured deadline, records it, and turns the answer
 * into an outcome; a monthly-quota 429 (or a refused token) pauses the channel for every replica.
 */
export async function callAndSettle(deps: SendDeps, channel: PoolChannel, endpoint: RateEndpoint, attempt: number, call: LineCall): Promise<SendOutcome> {
  return (await callAndRecord(deps, channel, endpoint, attempt, call)).outcome;
}

/** `callAndSettle`, with LINE's answer as well as the outcome (for calls whose body is the point). */
export async function callAndRecord(
  deps: SendDeps,
  channel: PoolChannel,
  endpoint: RateEndpoint,
  attempt: number,
  call: LineCall,
): Promise<{ outcome: SendOutcome; result: ApiResult<unknown> | undefined }> {
  const { db, clock, config, logger } = deps;
  try {
    await deps.limiter.acquire(channel.id, endpoint);
  } catch (error) {
    return { outcome: retryable(deps, attempt, `rate limiter unavailable: ${coerceError(error).message}`), result: undefined };
  }
  const line = config.current().line;
  const retryKey = call.retryKey ?? null;
  const startedAt = clock.now();
  const started = performance.now();
  const result = await deps.api.call(line.apiBaseUrl, channel.channelAccessToken, call, line.requestTimeout.ms);
  const durationMs = performance.now() - started;
  const outcome = classifySend(result, {
    attempt,
    backoff: { baseDelayMs: line.retry.baseDelay.ms, maxDelayMs: line.retry.maxDelay.ms },
    now: clock.now(),
    pauseMs: line.quotaRecheck.ms,
    ...(deps.random ? { random: deps.random } : {}),
  });
  const log = { channel: channel.slug, endpoint, retryKey, attempt, ...describeResult(result), outcome: outcome.kind };
  if (outcome.kind !== 'sent' || line.requestLog === 'all') {
    try {
      await deps.requestLog.record({ channelId: channel.id, endpoint, retryKey, result, outcome: outcome.kind, error: reasonOf(outcome), startedAt, durationMs });
    } catch (error) {
      // The send happened; losing its log line must not turn it into a retry.
      logger.error({ ...log, err: coerceError(error) }, 'could not record a LINE request');
    }
  }
  if (outcome.kind === 'channelPaused') {
    deps.pool.patch(channel.id, { pausedUntil: outcome.until, pauseReason: outcome.reason });
    logger.error({ ...log, until: outcome.until, reason: outcome.reason }, 'LINE channel paused: sending through it stops until then');
    // Stored so other replicas and the channel's API view see it; if that fails, this replica still holds off.
    await pauseLineChannel(db, clock, channel.id, outcome.until, outcome.reason).catch((error: unknown) => logger.error({ ...log, err: coerceError(error) }, 'could not store the channel pause'));
  } else if (outcome.kind === 'final') {
    logger.warn({ ...log, reason: outcome.reason }, 'LINE refused the request');
  } else if (outcome.kind === 'retryable') {
    logger.info({ ...log, reason: outcome.reason, afterMs: outcome.afterMs }, 'LINE request will be retried with the same retry key');
  } else {
    logger.debug(log, 'LINE request done');
  }
  return { outcome, result };
}

function describeResult(result: ApiResult<unknown>): Record<string, unknown> {
  if (result.kind === 'response') return { status: result.status, requestId: result.requestId, acceptedRequestId: result.acceptedRequestId };
  return { status: null, failure: result.kind };
}

function reasonOf(outcome: SendOutcome): string | null {
  return 'reason' in outcome ? outcome.reason : null;
}

function final(reason: string): SendOutcome {
  return { kind: 'final', reason, status: null, requestId: null };
}

function retryable(deps: SendDeps, attempt: number, reason: string): SendOutcome {
  const { baseDelay, maxDelay } = deps.config.current().line.retry;
  const afterMs = fullJitterDelay({ baseDelayMs: baseDelay.ms, maxDelayMs: maxDelay.ms }, attempt, deps.random);
  return { kind: 'retryable', afterMs, reason, requestId: null };
}
