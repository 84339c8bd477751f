import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
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
});
