/**
 * Programmatic fault injection for the LINE API routes. Rules match in insertion order; the first
 * match applies and uses up one of its `times` (default 1; `Infinity` for a standing fault).
 */

export type FaultAction =
  /** Answer with this status (and body, default LINE's 500 body) instead of handling the request. */
  | { status: number; body?: unknown; headers?: Record<string, string> }
  /** Never answer; the request is held until the client gives up (or the emulator closes). */
  | { kind: 'timeout' }
  /** Close the connection without answering; nothing is processed. */
  | { kind: 'drop' }
  /** Wait `ms` on the emulator's clock, then handle the request normally. */
  | { kind: 'delay'; ms: number }
  /** Handle the request normally (accept and record it), then close the connection instead of answering. */
  | { kind: 'after-accept-drop' };

export interface FaultRule {
  method?: string;
  /** Exact pathname, or a pattern tested against it. */
  path?: string | RegExp;
  channelId?: string;
  /** Default 1. */
  times?: number;
  fault: FaultAction;
}

export interface FaultHandle {
  readonly id: number;
  /** How many requests this rule has hit so far. */
  readonly hits: number;
  /** Resolves when the rule first hits: lets a test act while a request is being held. */
  readonly triggered: Promise<void>;
  remove(): void;
}

export interface FaultInfo {
  id: number;
  method: string | null;
  path: string | null;
  channelId: string | null;
  remaining: number;
  hits: number;
  fault: FaultAction;
}

export interface FaultRegistry {
  add(rule: FaultRule): FaultHandle;
  remove(id: number): boolean;
  clear(): void;
  list(): FaultInfo[];
}

export interface FaultMatcher {
  match(request: { method: string; path: string; channelId: string | null }): FaultAction | undefined;
}

interface Entry {
  id: number;
  rule: FaultRule;
  remaining: number;
  hits: number;
  resolveTriggered: () => void;
}

export function faultName(fault: FaultAction): string {
  return 'kind' in fault ? fault.kind : `status-${fault.status}`;
}

export function createFaults(): FaultRegistry & FaultMatcher {
  let nextId = 1;
  const entries: Entry[] = [];

  const matches = (rule: FaultRule, req: { method: string; path: string; channelId: string | null }): boolean => {
    if (rule.method !== undefined && rule.method.toUpperCase() !== req.method.toUpperCase()) return false;
    if (rule.channelId !== undefined && rule.channelId !== req.channelId) return false;
    if (rule.path === undefined) return true;
    return typeof rule.path === 'string' ? rule.path === req.path : rule.path.test(req.path);
  };

  const remove = (id: number): boolean => {
    const i = entries.findIndex((e) => e.id === id);
    if (i < 0) return false;
    entries.splice(i, 1);
    return true;
  };

  return {
    add(rule) {
      const times = rule.times ?? 1;
      if (!(times > 0)) throw new Error('LINE emulator: fault times must be > 0');
      if ('kind' in rule.fault && rule.fault.kind === 'delay' && !(rule.fault.ms >= 0)) {
        throw new Error('LINE emulator: delay fault needs ms >= 0');
      }
      let resolveTriggered = (): void => {};
      const triggered = new Promise<void>((resolve) => {
        resolveTriggered = resolve;
      });
      const entry: Entry = { id: nextId++, rule, remaining: times, hits: 0, resolveTriggered };
      entries.push(entry);
      return {
        id: entry.id,
        get hits() {
          return entry.hits;
        },
        triggered,
        remove: () => {
          remove(entry.id);
        },
      };
    },
    remove,
    clear() {
      entries.length = 0;
    },
    list: () =>
      entries.map((e) => ({
        id: e.id,
        method: e.rule.method ?? null,
        path: e.rule.path === undefined ? null : String(e.rule.path),
        channelId: e.rule.channelId ?? null,
        remaining: e.remaining,
        hits: e.hits,
        fault: e.rule.fault,
      })),
    match(req) {
      const entry = entries.find((e) => matches(e.rule, req));
      if (!entry) return undefined;
      entry.hits += 1;
      entry.remaining -= 1;
      if (entry.remaining <= 0) remove(entry.id);
      entry.resolveTriggered();
      return entry.rule.fault;
    },
  };
}
