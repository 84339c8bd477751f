/**
 * Signed webhook delivery (zoom-api.md §7): Zoom's envelope, `x-zm-signature: v0=HMAC(secret, "v0:{ts}:{body}")`,
 * a 3 s answer window and retries at +5, +20 and +60 minutes, all on the emulator's clock, over real HTTP.
 * Each subscription is a FIFO queue, so a receiver sees events in the order they happened (as a test expects);
 * publishing only queues, so the API call that caused an event never waits for its delivery.
 */
import { createHmac, randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '../../clock.ts';
import type { WebhookDelivery, WebhookSubscription } from './types.ts';

/** After the 1st, 2nd and 3rd failed attempt; then Zoom gives up. */
const RETRY_DELAYS_MS = [5 * 60_000, 20 * 60_000, 60 * 60_000];
const ANSWER_WINDOW_MS = 3000;

export interface DropRule {
  event?: string;
  meetingId?: number;
  /** Default 1; Infinity for all. */
  times?: number;
}

export interface ValidationResult {
  ok: boolean;
  status: number | null;
  detail: string;
}

export interface Webhooks {
  subscribe(sub: WebhookSubscription): () => void;
  validate(accountId: string): Promise<ValidationResult>;
  deliveries(filter?: { accountId?: string; event?: string }): WebhookDelivery[];
  drop(rule: DropRule): { remove(): void };
  redeliver(deliveryId: string): Promise<number | null>;
  settle(): Promise<void>;
  /** Queues `event` for every matching subscription of the account (extra = top-level fields such as download_token). */
  publish(accountId: string, event: string, object: Record<string, unknown>, extra?: Record<string, unknown>): void;
  /** Forgets deliveries, drop rules and scheduled retries; keeps subscriptions. */
  reset(): void;
  close(): void;
}

export function signature(secretToken: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secretToken).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

interface Sub extends WebhookSubscription {
  id: number;
  /** Tail of this subscription's FIFO queue. */
  tail: Promise<unknown>;
}

interface ArmedDrop {
  rule: DropRule;
  remaining: number;
}

export interface WebhookOptions {
  /**
   * Real milliseconds a request may still answer after its 3 s passed on a virtual clock: a test that advances
   * virtual time while real HTTP is in flight must not turn a prompt answer into a timeout (and a retry).
   */
  answerGraceMs: number;
}

export function createWebhooks(clock: Clock, options: WebhookOptions): Webhooks {
  let nextSub = 1;
  let nextDelivery = 1;
  const subs = new Map<number, Sub>();
  const log: WebhookDelivery[] = [];
  /** Which subscription each delivery went to (for redeliver). */
  const targets = new Map<string, Sub>();
  let drops: ArmedDrop[] = [];
  const retryTimers = new Set<TimerHandle>();
  const inFlight = new Set<Promise<unknown>>();
  const closing = new AbortController();

  /** Runs `job` after everything queued before it for this subscription; settle() waits for it. */
  const enqueue = <T>(sub: Sub, job: () => Promise<T>): Promise<T> => {
    const run = sub.tail.then(job, job);
    sub.tail = run.catch(() => undefined);
    inFlight.add(run);
    void run.finally(() => inFlight.delete(run)).catch(() => undefined);
    return run;
  };

  /** One signed POST; the delivery record is updated with the answer (null: no answer within 3 s). */
  const attempt = async (sub: Sub, event: string, body: string, n: number): Promise<{ status: number | null; text: string }> => {
    const record: WebhookDelivery = { id: `wh_${nextDelivery++}`, event, accountId: sub.accountId, attempt: n, status: null, at: clock.now().toISOString(), body };
    log.push(record);
    targets.set(record.id, sub);
    const ts = Math.floor(clock.now().getTime() / 1000);
    const abort = new AbortController();
    let grace: NodeJS.Timeout | undefined;
    const timer = clock.setTimeout(() => {
      const timeout = (): void => abort.abort(new Error('no answer within 3 s'));
      if (options.answerGraceMs <= 0) return timeout();
      grace = setTimeout(timeout, options.answerGraceMs);
    }, ANSWER_WINDOW_MS);
    const onClose = (): void => abort.abort(new Error('emulator closed'));
    closing.signal.addEventListener('abort', onClose, { once: true });
    try {
      const res = await fetch(sub.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Zoom Marketplace/1.0a',
          'x-zm-request-timestamp': String(ts),
          'x-zm-signature': signature(sub.secretToken, ts, body),
        },
        body,
        redirect: 'manual',
        signal: abort.signal,
      });
      const text = await res.text().catch(() => '');
      record.status = res.status;
      return { status: res.status, text };
    } catch {
      return { status: null, text: '' };
    } finally {
      clock.clearTimeout(timer);
      clearTimeout(grace);
      closing.signal.removeEventListener('abort', onClose);
    }
  };

  const deliver = (sub: Sub, event: string, body: string, n: number): void => {
    void enqueue(sub, () => attempt(sub, event, body, n)).then(({ status }) => {
      const ok = status !== null && status >= 200 && status < 300;
      const delay = RETRY_DELAYS_MS[n - 1];
      if (ok || delay === undefined || closing.signal.aborted || !subs.has(sub.id)) return;
      const handle = clock.setTimeout(() => {
        retryTimers.delete(handle);
        if (subs.has(sub.id)) deliver(sub, event, body, n + 1);
      }, delay);
      retryTimers.add(handle);
    });
  };

  const takeDrop = (event: string, object: Record<string, unknown>): boolean => {
    const hit = drops.find(
      (d) => d.remaining > 0 && (d.rule.event === undefined || d.rule.event === event) && (d.rule.meetingId === undefined || Number(object.id) === d.rule.meetingId),
    );
    if (!hit) return false;
    hit.remaining--;
    return true;
  };

  const validateOne = async (sub: Sub): Promise<ValidationResult> => {
    const plainToken = randomBytes(16).toString('base64url');
    const body = JSON.stringify({ payload: { plainToken }, event_ts: clock.now().getTime(), event: 'endpoint.url_validation' });
    const { status, text } = await enqueue(sub, () => attempt(sub, 'endpoint.url_validation', body, 1));
    if (status === null) return { ok: false, status, detail: `${sub.url}: no answer within 3 s` };
    if (status !== 200 && status !== 204) return { ok: false, status, detail: `${sub.url}: answered ${status}` };
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      return { ok: false, status, detail: `${sub.url}: answer is not JSON` };
    }
    const expected = createHmac('sha256', sub.secretToken).update(plainToken).digest('hex');
    const a = typeof answer === 'object' && answer !== null ? (answer as Record<string, unknown>) : {};
    if (a.plainToken !== plainToken) return { ok: false, status, detail: `${sub.url}: plainToken not echoed` };
    if (a.encryptedToken !== expected) return { ok: false, status, detail: `${sub.url}: encryptedToken is not hex HMAC-SHA256(secretToken, plainToken)` };
    return { ok: true, status, detail: `${sub.url}: validated` };
  };

  return {
    subscribe(sub) {
      const id = nextSub++;
      subs.set(id, { ...sub, events: sub.events ? [...sub.events] : undefined, id, tail: Promise.resolve() });
      return () => void subs.delete(id);
    },
    async validate(accountId) {
      const mine = [...subs.values()].filter((s) => s.accountId === accountId);
      if (mine.length === 0) return { ok: false, status: null, detail: `no subscription for account ${accountId}` };
      const results = await Promise.all(mine.map(validateOne));
      return results.find((r) => !r.ok) ?? results[0] ?? { ok: false, status: null, detail: 'unreachable' };
    },
    deliveries: (filter) =>
      log.filter((d) => (!filter?.accountId || d.accountId === filter.accountId) && (!filter?.event || d.event === filter.event)).map((d) => ({ ...d })),
    drop(rule) {
      const armed: ArmedDrop = { rule: { ...rule }, remaining: rule.times ?? 1 };
      drops.push(armed);
      return { remove: () => void (drops = drops.filter((d) => d !== armed)) };
    },
    async redeliver(deliveryId) {
      const original = log.find((d) => d.id === deliveryId);
      const sub = targets.get(deliveryId);
      if (!original || !sub) throw new Error(`no webhook delivery ${deliveryId}`);
      // A duplicate: the same bytes, a fresh timestamp and signature, no retries of its own.
      const { status } = await enqueue(sub, () => attempt(sub, original.event, original.body, 1));
      return status;
    },
    async settle() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
    publish(accountId, event, object, extra) {
      if (closing.signal.aborted || takeDrop(event, object)) return;
      const targetsNow = [...subs.values()].filter((s) => s.accountId === accountId && (!s.events || s.events.includes(event)));
      if (targetsNow.length === 0) return;
      const body = JSON.stringify({ event, event_ts: clock.now().getTime(), payload: { account_id: accountId, object }, ...extra });
      for (const sub of targetsNow) deliver(sub, event, body, 1);
    },
    reset() {
      for (const t of retryTimers) clock.clearTimeout(t);
      retryTimers.clear();
      log.length = 0;
      targets.clear();
      drops = [];
    },
    close() {
      for (const t of retryTimers) clock.clearTimeout(t);
      retryTimers.clear();
      closing.abort();
    },
  };
}
