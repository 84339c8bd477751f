import type { OutMessage } from '../line/messages.ts';
import type { SendOutcome } from '../line/outcomes.ts';
import type { SendContext } from './recheck.ts';

/** One student's message, ready to go. */
export interface SendUnit {
  deliveryId: number;
  memberId: number;
  lineUserId: string;
  following: 'unknown' | 'following' | 'unfollowed';
  channelId: number;
  retryKey: string;
  attempt: number;
  /** Its due time: its first attempt was made at or after it (LINE keeps a retry key 24 hours). */
  dueAt: Date;
}

/** One retry request: the deliveries it settles, and on which of the channel's rate limits it goes. */
export interface Retry {
  units: readonly SendUnit[];
  endpoint: 'push' | 'multicast';
  call: () => Promise<SendOutcome>;
}

/** The LINE side as the engine needs it (built on the LINE module's send path). */
export interface DeliverySender {
  /** The messages for a booking (same for every student of one class and kind), or why not. */
  messagesFor(context: SendContext, link: string): { ok: true; messages: OutMessage[] } | { ok: false; reason: string };
  push(unit: SendUnit, messages: OutMessage[]): Promise<SendOutcome>;
  /**
   * New multicast chunks (each ≤ 500 students of one channel): their member sets and retry keys are
   * stored first, all together, and each comes back as the call that sends it. Fenced on the claim's
   * `leaseToken`: a delivery no longer ours is neither stored in a chunk nor sent to.
   */
  multicasts(chunks: readonly { units: readonly SendUnit[]; messages: OutMessage[] }[], leaseToken: string): Promise<(() => Promise<SendOutcome>)[]>;
  /**
   * Deliveries tried before go the way they went the first time, with the same retry key: those of
   * a stored multicast chunk as that chunk, one request for all of them, the others by push. Never
   * into a new chunk (a new key).
   */
  retries(units: readonly { unit: SendUnit; messages: OutMessage[] }[]): Promise<Retry[]>;
  rates(channelId: number): { pushPerSecond: number; multicastPerSecond: number; multicastSize: number };
}
