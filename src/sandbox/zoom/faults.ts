/** Programmatic fault injection: which requests misbehave, how, and how often. */

export type Fault =
  /** Answer at once with this status (and body), without touching any state. */
  | { kind?: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Hold the request open, unanswered, until the client gives up or the emulator closes. */
  | { kind: 'timeout' }
  /** Destroy the socket before doing anything. */
  | { kind: 'drop' }
  /** Wait `ms` (on the emulator's clock), then serve normally. */
  | { kind: 'delay'; ms: number }
  /** Do the work (e.g. create the meeting), then destroy the socket instead of answering. */
  | { kind: 'after-commit-drop' }
  /** Do the work, then answer with an error anyway (a gateway failing after the backend committed). */
  | { kind: 'after-commit-error'; status?: number; body?: unknown };

export interface FaultRule {
  /** Default: any method. */
  method?: string;
  /** Exact pathname (no query), or a pattern tested against it. Default: any path. */
  path?: string | RegExp;
  /** How many matching requests it hits (default 1; Infinity for all). */
  times?: number;
  fault: Fault;
}

export interface FaultHandle {
  readonly id: number;
  /** Matching requests it has hit so far. */
  hits(): number;
  /** Resolves when it first hits a request (lets tests wait for an event instead of sleeping). */
  readonly triggered: Promise<void>;
  remove(): void;
}

export interface FaultInfo {
  id: number;
  method: string | null;
  path: string | null;
  remaining: number | null;
  hits: number;
  fault: string;
}

export interface FaultRegistry {
  add(rule: FaultRule): FaultHandle;
  clear(): void;
  list(): FaultInfo[];
  /** The fault for this request, if any; counts the hit. */
  take(method: string, path: string): Fault | undefined;
}

interface Armed {
  id: number;
  rule: FaultRule;
  remaining: number;
  hits: number;
  onHit: () => void;
}

export function faultName(fault: Fault): string {
  return fault.kind === undefined || fault.kind === 'status' ? `status-${fault.status}` : fault.kind;
}

export function createFaultRegistry(): FaultRegistry {
  let nextId = 1;
  let armed: Armed[] = [];

  const matches = (a: Armed, method: string, path: string): boolean => {
    if (a.remaining <= 0) return false;
    if (a.rule.method && a.rule.method.toUpperCase() !== method) return false;
    const p = a.rule.path;
    if (p === undefined) return true;
    return typeof p === 'string' ? p === path : p.test(path);
  };

  return {
    add(rule) {
      const id = nextId++;
      let resolve: () => void = () => undefined;
      const triggered = new Promise<void>((r) => (resolve = r));
      const entry: Armed = { id, rule, remaining: rule.times ?? 1, hits: 0, onHit: () => resolve() };
      armed.push(entry);
      return {
        id,
        hits: () => entry.hits,
        triggered,
        remove: () => {
          armed = armed.filter((a) => a.id !== id);
        },
      };
    },
    clear() {
      armed = [];
    },
    list() {
      return armed.map((a) => ({
        id: a.id,
        method: a.rule.method ?? null,
        path: a.rule.path === undefined ? null : String(a.rule.path),
        remaining: Number.isFinite(a.remaining) ? a.remaining : null,
        hits: a.hits,
        fault: faultName(a.rule.fault),
      }));
    },
    take(method, path) {
      const hit = armed.find((a) => matches(a, method, path));
      if (!hit) return undefined;
      hit.remaining--;
      hit.hits++;
      hit.onHit();
      return hit.rule.fault;
    },
  };
}
