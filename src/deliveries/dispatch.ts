/**
 * Pure choice of how to send a batch of identical-message groups on one channel. Push and
 * multicast have separate per-channel limits (LINE: 2,000 and 200 requests/s; a multicast carries up
 * to 500 students), so both run at once and each group goes where it shortens the drain the most:
 * big classes to multicast, the rest to push, until the two queues finish together.
 */
export interface DispatchGroup<T> {
  units: T[];
}

export interface DispatchPlan<T> {
  pushes: T[];
  multicasts: T[][];
  /** Seconds to drain at the given rates (the bound the plan is built against). */
  seconds: number;
}

export function planDispatch<T>(groups: readonly DispatchGroup<T>[], rates: { pushPerSecond: number; multicastPerSecond: number; multicastSize: number }): DispatchPlan<T> {
  const sorted = [...groups].sort((a, b) => b.units.length - a.units.length);
  const pushes: T[] = [];
  const multicasts: T[][] = [];
  let pushTime = 0;
  let multicastTime = 0;
  for (const group of sorted) {
    const n = group.units.length;
    if (n === 0) continue;
    const chunks = Math.ceil(n / rates.multicastSize);
    const viaPush = Math.max(pushTime + n / rates.pushPerSecond, multicastTime);
    const viaMulticast = Math.max(pushTime, multicastTime + chunks / rates.multicastPerSecond);
    // A lone student goes by push unless push is the bottleneck.
    if (viaMulticast < viaPush) {
      multicastTime += chunks / rates.multicastPerSecond;
      for (let i = 0; i < n; i += rates.multicastSize) multicasts.push(group.units.slice(i, i + rates.multicastSize));
    } else {
      pushTime += n / rates.pushPerSecond;
      pushes.push(...group.units);
    }
  }
  return { pushes, multicasts, seconds: Math.max(pushTime, multicastTime) };
}

/**
 * The order to start requests in when each lane (a channel's push or multicast endpoint) drains at
 * its own rate: item i of a lane is due at i / rate, and all lanes are merged by that time (ties
 * keep lane order). Started in lane order instead, the in-flight slots would all wait on one
 * channel's bucket while the other channels sat idle: a whole peak claimed at once took 42 s
 * instead of 10.
 */
export function interleaveByRate<T>(lanes: readonly { rate: number; items: readonly T[] }[]): T[] {
  const keyed: { at: number; lane: number; item: T }[] = [];
  for (const [lane, { rate, items }] of lanes.entries()) {
    const step = rate > 0 ? 1 / rate : Number.MAX_VALUE;
    for (const [i, item] of items.entries()) keyed.push({ at: i * step, lane, item });
  }
  keyed.sort((a, b) => a.at - b.at || a.lane - b.lane);
  return keyed.map((k) => k.item);
}
