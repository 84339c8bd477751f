import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Clock, TimerHandle } from '../clock.ts';
import { ConfigError, loadConfig, type ConfigSource } from './load.ts';
import { requiresRestart, type Config } from './schema.ts';

export interface ReloadOutcome {
  at: string;
  trigger: 'file' | 'signal' | 'api';
  status: 'applied' | 'unchanged' | 'rejected';
  /** Keys whose new value is now in force. */
  changed: string[];
  /** Keys that changed in the file but only take effect after a restart; the running value stays. */
  restartRequired: string[];
  error?: string;
}

export type ConfigListener = (next: Config, previous: Config, changed: readonly string[]) => void;

/**
 * Holds the configuration in force and swaps it atomically on reload. Readers call `current()`
 * each time they need a value, so intervals, lead times and templates change without a restart.
 */
export interface ConfigStore {
  current(): Config;
  reload(trigger: ReloadOutcome['trigger']): ReloadOutcome;
  lastReload(): ReloadOutcome | undefined;
  onChange(listener: ConfigListener): () => void;
  onReload(listener: (outcome: ReloadOutcome) => void): () => void;
  /** Watches the config file (if there is one); reloads after `reload.debounce` of quiet. */
  watchFile(): void;
  close(): void;
}

export function createConfigStore(initial: Config, source: ConfigSource, clock: Clock): ConfigStore {
  let config = initial;
  let last: ReloadOutcome | undefined;
  const changeListeners = new Set<ConfigListener>();
  const reloadListeners = new Set<(outcome: ReloadOutcome) => void>();
  let watcher: FSWatcher | undefined;
  let pending: TimerHandle | undefined;

  const reload = (trigger: ReloadOutcome['trigger']): ReloadOutcome => {
    const at = clock.now().toISOString();
    let next: Config;
    try {
      next = loadConfig(source);
    } catch (error) {
      const message = error instanceof ConfigError ? error.message : String(error);
      return finish({ at, trigger, status: 'rejected', changed: [], restartRequired: [], error: message });
    }
    const before = flatten(config);
    const after = flatten(next);
    const keys = [...new Set([...before.keys(), ...after.keys()])].filter((k) => before.get(k) !== after.get(k));
    const restartRequired = keys.filter(requiresRestart);
    const changed = keys.filter((k) => !requiresRestart(k));
    // Keep the running value of restart-only keys so what we report is what is in force.
    for (const key of restartRequired) next = withValueAt(next, key.split('.'), valueAt(config, key.split('.')));
    if (changed.length === 0) {
      return finish({ at, trigger, status: 'unchanged', changed, restartRequired });
    }
    const previous = config;
    config = Object.freeze(next);
    for (const listener of changeListeners) listener(config, previous, changed);
    return finish({ at, trigger, status: 'applied', changed, restartRequired });
  };

  const finish = (outcome: ReloadOutcome): ReloadOutcome => {
    last = outcome;
    for (const listener of reloadListeners) listener(outcome);
    return outcome;
  };

  return {
    current: () => config,
    reload,
    lastReload: () => last,
    onChange(listener) {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    onReload(listener) {
      reloadListeners.add(listener);
      return () => reloadListeners.delete(listener);
    },
    watchFile() {
      if (!source.file || watcher) return;
      const file = resolve(source.file);
      let seen = identity(file);
      // Watch the directory: editors and config management replace the file by rename. Kubernetes
      // swaps a `..data` symlink instead, so events naming other entries count when the file we
      // would read (links followed) changed; unrelated churn (a database beside it) never delays a reload.
      watcher = watch(dirname(file), (_event, name) => {
        const now = identity(file);
        const changed = now !== seen;
        seen = now;
        if (name !== null && name !== basename(file) && !changed) return;
        if (pending) clock.clearTimeout(pending);
        pending = clock.setTimeout(() => {
          pending = undefined;
          reload('file');
        }, config.reload.debounce.ms);
      });
      watcher.unref();
    },
    close() {
      watcher?.close();
      watcher = undefined;
      if (pending) clock.clearTimeout(pending);
      changeListeners.clear();
      reloadListeners.clear();
    },
  };
}

/** What the config path leads to, links followed: a swapped link or a rewritten file changes it. */
function identity(file: string): string {
  try {
    const stat = statSync(file, { bigint: true, throwIfNoEntry: false });
    return stat ? `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}` : 'missing';
  } catch {
    return 'unreadable';
  }
}

/** key path → JSON text of the leaf value (Durations show as written). */
export function flatten(value: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  const plain: unknown = JSON.parse(JSON.stringify(value));
  walk(plain, prefix, out);
  return out;
}

function walk(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) walk(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.set(prefix, JSON.stringify(value));
  }
}

function valueAt(value: unknown, path: string[]): unknown {
  let node = value;
  for (const key of path) node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  return node;
}

function withValueAt<T>(root: T, path: string[], value: unknown): T {
  const [head, ...rest] = path;
  if (head === undefined) return value as T;
  const copy: Record<string, unknown> = { ...(root as Record<string, unknown>) };
  copy[head] = withValueAt(copy[head], rest, value);
  return copy as T;
}

/** The config as shown to operators: passwords in URLs replaced. */
export function redactConfig(config: Config): unknown {
  const plain = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  const database = plain.database as Record<string, unknown>;
  database.url = redactUrl(String(database.url));
  return plain;
}

const MASK = '***';
/** The query parameters node-postgres reads a password from, like `user:pass@`; their values only. */
const SECRET_PARAMS = /([?&](?:ssl)?password=)[^&#]*/gi;

/**
 * The one way a database URL is shown (API, logs, CLI): passwords masked wherever pg would read one.
 * The query is masked in place, not re-encoded, so the rest reads as the operator wrote it.
 */
export function redactUrl(url: string): string {
  const query = url.replace(SECRET_PARAMS, `$1${MASK}`);
  try {
    const parsed = new URL(query);
    if (!parsed.password) return query;
    parsed.password = MASK;
    return parsed.toString();
  } catch {
    // Not a WHATWG URL, yet pg may still read it: mask `user:pass@` by pattern rather than show it.
    return query.replace(/(\/\/[^/:@?#]*:)[^@/?#]*@/, `$1${MASK}@`);
  }
}
