/**
 * Token-bucket arithmetic (pure), as LINE describes its own limits: tokens refill continuously at
 * `rate` per second up to `capacity`. A reservation takes up to `want` tokens at once.
 */
export interface BucketState {
  tokens: number;
  refilledAt: number;
}

export interface BucketLimits {
  /** Tokens per second. */
  rate: number;
  capacity: number;
}

export interface Reservation {
  granted: number;
  /** The state to store (unchanged when nothing was granted). */
  next: BucketState;
  /** When nothing was granted: how long until the whole `want` (at most the capacity) is there. */
  waitMs: number;
}

/**
 * A mark further ahead of the database's clock than this was not left by replicas disagreeing by a
 * few ms about that clock: the clock itself stepped back (or the row is older than the write guard
 * in `reserveTokens`).
 */
export const CLOCK_STEP_MS = 1000;

/**
 * `nowMs` is the database's clock as this replica knows it (see `reserveTokens`). The mark never
 * moves back: replicas' estimates of that clock differ by a few ms, and a mark moved back by one of
 * them would mint those ms of tokens a second time. A mark ahead mints nothing until the clock
 * reaches it, unless it is more than CLOCK_STEP_MS ahead: then it is brought back to the clock, which
 * would otherwise hold every replica's tokens back until it caught up.
 */
export function refill(state: BucketState, nowMs: number, limits: BucketLimits): BucketState {
  if (state.refilledAt - nowMs > CLOCK_STEP_MS) return { tokens: state.tokens, refilledAt: nowMs };
  const elapsed = Math.max(0, nowMs - state.refilledAt);
  return { tokens: Math.min(limits.capacity, state.tokens + (elapsed * limits.rate) / 1000), refilledAt: Math.max(nowMs, state.refilledAt) };
}

export function reserve(state: BucketState, want: number, nowMs: number, limits: BucketLimits): Reservation {
  const current = refill(state, nowMs, limits);
  const granted = Math.max(0, Math.min(want, Math.floor(current.tokens)));
  if (granted > 0) return { granted, next: { tokens: current.tokens - granted, refilledAt: current.refilledAt }, waitMs: 0 };
  // Wait for the whole want rather than one token: fewer, larger reservations keep the shared row cool.
  const target = Math.max(1, Math.min(want, Math.floor(limits.capacity)));
  // A mark still ahead of the clock refills from the mark on.
  const ahead = current.refilledAt - nowMs;
  return { granted: 0, next: state, waitMs: Math.max(1, ahead + Math.ceil(((target - current.tokens) * 1000) / limits.rate)) };
}

/** Capacity from the configured burst (time at the rate); never below one request. */
export function capacityOf(rate: number, burstMs: number): number {
  return Math.max(1, Math.floor((rate * burstMs) / 1000));
}
