/**
 * A hierarchical timing wheel (Varghese & Lauck; the shape of Kafka's purgatory and Netty's
 * HashedWheelTimer): level 0 has `slots[0]` ticks of `tickMs`, each higher level's slot spans a
 * whole turn of the level below. Adding, re-arming and removing are O(1); entries cascade down a
 * level as their time approaches. It is only a cache of what the database says is due: it may be
 * rebuilt from the database at any time, and the claim re-checks every fired entry.
 */
export interface TimingWheel {
  /** Arms (or re-arms) `id` to fire at `dueMs`. Due now or earlier: fires on the next advance. */
  add(id: number, dueMs: number): void;
  remove(id: number): void;
  has(id: number): boolean;
  /** Moves the wheel to `nowMs`; returns the ids now due, in due order. */
  advance(nowMs: number): number[];
  /** When the next entry is due (a lower bound for entries in higher levels), or undefined if empty. */
  nextDueAt(): number | undefined;
  readonly size: number;
  /** The furthest time from now that the wheel can hold. */
  readonly horizonMs: number;
}

export function createTimingWheel(startMs: number, options: { tickMs?: number; slots?: readonly number[] } = {}): TimingWheel {
  const tickMs = options.tickMs ?? 1000;
  const slotCounts = options.slots ?? [60, 60, 24, 8]; // 1 s, 1 min, 1 h, 1 day: up to 8 days ahead
  const spans: number[] = [];
  let span = tickMs;
  for (const count of slotCounts) {
    spans.push(span);
    span *= count;
  }
  const horizonMs = span;
  const levels: number[][][] = slotCounts.map((count) => Array.from({ length: count }, () => []));
  // id → due, in ms after `epoch`: the truth; slots may hold stale copies. Kept as an offset so that,
  // for the ~12 days after the epoch, it is a small integer V8 stores inline: an absolute epoch-ms
  // value is a boxed number of its own, 16 bytes more per entry (1M entries: about 30 MB).
  const epoch = startMs;
  const due = new Map<number, number>();
  const dueOf = (id: number): number | undefined => {
    const offset = due.get(id);
    return offset === undefined ? undefined : epoch + offset;
  };
  let ready: number[] = [];
  let current = Math.floor(startMs / tickMs) * tickMs;

  const place = (id: number, at: number): void => {
    const delta = at - current;
    if (delta < tickMs) {
      ready.push(id);
      return;
    }
    for (let level = 0; level < levels.length; level++) {
      const levelSpan = spans[level] ?? tickMs;
      const count = slotCounts[level] ?? 1;
      if (delta < levelSpan * count || level === levels.length - 1) {
        // Beyond the top level: park in the top level's furthest slot; it cascades again later.
        const slotTime = Math.min(at, current + levelSpan * (count - 1));
        levels[level]?.[Math.floor(slotTime / levelSpan) % count]?.push(id);
        return;
      }
    }
  };

  const cascade = (level: number): void => {
    const levelSpan = spans[level] ?? tickMs;
    const count = slotCounts[level] ?? 1;
    const slot = Math.floor(current / levelSpan) % count;
    const entries = levels[level]?.[slot] ?? [];
    if (levels[level]) (levels[level] as number[][])[slot] = [];
    for (const id of entries) {
      const at = dueOf(id);
      if (at !== undefined) place(id, at);
    }
  };

  return {
    add(id, dueMs) {
      due.set(id, dueMs - epoch);
      place(id, dueMs);
    },
    remove(id) {
      due.delete(id);
    },
    has: (id) => due.has(id),
    advance(nowMs) {
      const fired: { id: number; at: number }[] = [];
      const collect = (): void => {
        const keep: number[] = [];
        for (const id of ready) {
          const at = dueOf(id);
          if (at === undefined) continue;
          if (at <= nowMs) {
            fired.push({ id, at });
            due.delete(id);
          } else {
            keep.push(id);
          }
        }
        ready = [];
        for (const id of keep) place(id, dueOf(id) ?? nowMs);
      };
      collect();
      while (current + tickMs <= nowMs) {
        current += tickMs;
        // Cascade from the top down on turn boundaries, then fire level 0's slot.
        for (let level = levels.length - 1; level >= 1; level--) {
          if (current % (spans[level] ?? tickMs) === 0) cascade(level);
        }
        const slot0 = Math.floor(current / tickMs) % (slotCounts[0] ?? 1);
        const entries = levels[0]?.[slot0] ?? [];
        if (levels[0]) (levels[0] as number[][])[slot0] = [];
        ready.push(...entries);
        collect();
      }
      return fired.sort((a, b) => a.at - b.at || a.id - b.id).map((f) => f.id);
    },
    nextDueAt() {
      if (due.size === 0) return undefined;
      let best: number | undefined;
      for (const id of ready) {
        const at = dueOf(id);
        if (at !== undefined && (best === undefined || at < best)) best = at;
      }
      if (best !== undefined) return best;
      for (let level = 0; level < levels.length; level++) {
        const levelSpan = spans[level] ?? tickMs;
        const count = slotCounts[level] ?? 1;
        const base = Math.floor(current / levelSpan);
        for (let i = level === 0 ? 1 : 0; i < count; i++) {
          const slot = (base + i) % count;
          const entries = levels[level]?.[slot] ?? [];
          if (entries.some((id) => due.has(id))) {
            if (level === 0) return (base + i) * levelSpan;
            // Exact time of the earliest live entry in that slot.
            let min = Infinity;
            for (const id of entries) min = Math.min(min, dueOf(id) ?? Infinity);
            return Math.max(min, current + tickMs);
          }
        }
      }
      return undefined;
    },
    get size() {
      return due.size;
    },
    horizonMs,
  };
}
