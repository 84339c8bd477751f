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
