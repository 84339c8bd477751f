import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { systemClock, virtualClock } from '../../src/clock.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createConfigStore, type ConfigStore, type ReloadOutcome } from '../../src/config/store.ts';

/** Hot reload with real file writes and the real file watcher; tests await the reload event, never sleep. */
describe('hot reload', () => {
  let dir: string;
  let file: string;
  let store: ConfigStore;

  const write = (text: string): void => {
    // Write then rename, as editors and config management do.
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  };
  const nextReload = (): Promise<ReloadOutcome> =>
    new Promise((resolve) => {
      const off = store.onReload((outcome) => {
        off();
        resolve(outcome);
      });
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-reload-'));
    file = join(dir, 'scheduler.yaml');
    writeFileSync(file, 'log:\n  level: info\nreload:\n  debounce: 20ms\nhttp:\n  port: 3000\n');
    store = createConfigStore(loadConfig({ file, env: {} }), { file, env: {} }, systemClock());
    store.watchFile();
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies a valid change atomically and tells listeners what changed', async () => {
    const changes: string[][] = [];
    store.onChange((_next, _prev, changed) => changes.push([...changed]));
    const reloaded = nextReload();
    write('log:\n  level: debug\nreload:\n  debounce: 20ms\nhttp:\n  port: 3000\n  publicBaseUrl: https://x.example.com\n');
    const outcome = await reloaded;
    expect(outcome).toMatchObject({ trigger: 'file', status: 'applied', restartRequired: [] });
    expect(outcome.changed.sort()).toEqual(['http.publicBaseUrl', 'log.level']);
    expect(store.current().log.level).toBe('debug');
    expect(changes).toHaveLength(1);
    expect(store.lastReload()).toEqual(outcome);
  });

  it('rejects an invalid file, names the key, and keeps the old configuration', async () => {
    const before = store.current();
    const reloaded = nextReload();
    write('log:\n  level: loud\nreload:\n  debounce: 20ms\n');
    const outcome = await reloaded;
    expect(outcome.status).toBe('rejected');
    expect(outcome.error).toContain('log.level');
    expect(store.current()).toBe(before);
    expect(store.current().log.level).toBe('info');
  });

  it('reports a restart-only key instead of silently ignoring it, and keeps the running value', async () => {
    const reloaded = nextReload();
    write('log:\n  level: warn\nreload:\n  debounce: 20ms\nhttp:\n  port: 4000\n');
    const outcome = await reloaded;
    expect(outcome.status).toBe('applied');
    expect(outcome.changed).toEqual(['log.level']);
    expect(outcome.restartRequired).toEqual(['http.port']);
    expect(store.current().http.port).toBe(3000);
    expect(store.current().log.level).toBe('warn');
  });

  it('reloads on demand (SIGHUP, API) and says when nothing changed', () => {
    expect(store.reload('signal')).toMatchObject({ status: 'unchanged', changed: [] });
    writeFileSync(file, 'log:\n  level: error\nreload:\n  debounce: 20ms\n');
    expect(store.reload('api')).toMatchObject({ status: 'applied', changed: ['log.level'] });
  });

  it('rejects a reload that would make a loop spin (a zero poll interval) and keeps the old value', () => {
    writeFileSync(file, 'notifications:\n  pollInterval: 0s\nreload:\n  debounce: 20ms\n');
    const outcome = store.reload('api');
    expect(outcome).toMatchObject({ status: 'rejected' });
    expect(outcome.error).toContain('notifications.pollInterval: must be at least 1s');
    expect(store.current().notifications.pollInterval.ms).toBe(30_000);
  });

  it('reports a YAML syntax error by line and column without quoting the line, which may hold a password', () => {
    writeFileSync(file, 'database:\n  url: postgres://sched:pa: ss@db.internal/sched\n');
    const outcome = store.reload('api');
    expect(outcome.status).toBe('rejected');
    expect(outcome.error).toMatch(/YAML syntax error: .+ at line 2, column 8$/);
    // GET /api/config shows the last outcome, and the log repeats its error.
    for (const shown of [outcome.error, JSON.stringify(store.lastReload())]) {
      expect(shown).not.toContain('pa: ss');
      expect(shown).not.toContain('db.internal');
    }
  });
});

/**
 * Kubernetes mounts a ConfigMap as `config.yaml -> ..data/config.yaml` and `..data -> ..<timestamp>/`,
 * and updates it by swapping `..data`: the directory's events never name `config.yaml`.
 */
describe('hot reload from a Kubernetes ConfigMap volume', () => {
  let dir: string;
  let store: ConfigStore | undefined;

  /** What kubelet's atomic writer does: a new timestamped directory, a `..data_tmp` link to it renamed over `..data`. */
  const publish = (stamp: string, text: string): void => {
    mkdirSync(join(dir, stamp));
    writeFileSync(join(dir, stamp, 'config.yaml'), text);
    symlinkSync(stamp, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-configmap-'));
  });
  afterEach(() => {
    store?.close();
    store = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies an update made by swapping the ..data symlink', async () => {
    const first = '..2026_12_01_00_00_00.000000001';
    publish(first, 'log:\n  level: info\nreload:\n  debounce: 20ms\n');
    const file = join(dir, 'config.yaml');
    symlinkSync('..data/config.yaml', file);
    store = createConfigStore(loadConfig({ file, env: {} }), { file, env: {} }, systemClock());
    const outcomes: ReloadOutcome[] = [];
    store.onReload((outcome) => outcomes.push(outcome));
    store.watchFile();

    publish('..2026_12_01_00_05_00.000000002', 'log:\n  level: debug\nreload:\n  debounce: 20ms\n');
    rmSync(join(dir, first), { recursive: true }); // kubelet then removes the old version
    await vi.waitFor(() => expect(store?.current().log.level).toBe('debug'), { timeout: 3000, interval: 10 });
    expect(outcomes.filter((o) => o.status !== 'unchanged')).toEqual([expect.objectContaining({ trigger: 'file', status: 'applied', changed: ['log.level'] })]);
  });
});

describe('hot reload of imagemap.source', () => {
  it('rejects a source that is not an image, so it is neither reported applied nor shown as in force', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scheduler-reload-img-'));
    try {
      const file = join(dir, 'scheduler.yaml');
      writeFileSync(join(dir, 'logo.png'), 'this is not an image');
      writeFileSync(file, 'log:\n  level: info\n');
      const source = { file, env: {} };
      const store = createConfigStore(loadConfig(source), source, virtualClock());
      writeFileSync(file, `log:\n  level: info\nimagemap:\n  source: ${join(dir, 'logo.png')}\n`);
      const outcome = store.reload('api');
      expect(outcome.status).toBe('rejected');
      expect(outcome.error).toContain('imagemap.source');
      expect(store.current().imagemap.source).toBeNull();
      expect(store.lastReload()?.status).toBe('rejected');
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
