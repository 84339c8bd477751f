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
 * `nowMs` is the database's clock, the one clock every replica shares (see `reserveTokens`). A mark
 * ahead of it mints nothing and is brought back to it: left there (a row written by a replica that
 * went by its own fast clock), it would hold every replica's tokens back until the database's clock
 * caught up with it.
 */
export function refill(state: BucketState, nowMs: number, limits: BucketLimits): BucketState {
  const elapsed = Math.max(0, nowMs - state.refilledAt);
  return { tokens: Math.min(limits.capacity, state.tokens + (elapsed * limits.rate) / 1000), refilledAt: nowMs };
}

export function reserve(state: BucketState, want: number, nowMs: number, limits: BucketLimits): Reservation {
  const current = refill(state, nowMs, limits);
  const granted = Math.max(0, Math.min(want, Math.floor(current.tokens)));
  if (granted > 0) return { granted, next: { tokens: current.tokens - granted, refilledAt: current.refilledAt }, waitMs: 0 };
  // Wait for the whole want rather than one token: fewer, larger reservations keep the shared row cool.
  const target = Math.max(1, Math.min(want, Math.floor(limits.capacity)));
  return { granted: 0, next: state, waitMs: Math.max(1, Math.ceil(((target - current.tokens) * 1000) / limits.rate)) };
}

/** Capacity from the configured burst (time at the rate); never below one request. */
export function capacityOf(rate: number, burstMs: number): number {
  return Math.max(1, Math.floor((rate * burstMs) / 1000));
}
