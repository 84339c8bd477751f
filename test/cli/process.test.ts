import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { urlOf } from '../support/cli.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

const MAIN = resolve(import.meta.dirname, '../../src/main.ts');

interface Running {
  child: ChildProcessWithoutNullStreams;
  lines: Record<string, unknown>[];
  stderr: string[];
  /** Resolves with the first log line matching `msg` (events, not sleeps). */
  waitFor(msg: string): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

function run(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
  const lines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (line.msg === waiter.msg) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return {
    child,
    lines,
    stderr,
    exited,
    waitFor: (msg) => {
      const found = lines.find((l) => l.msg === msg);
      if (found) return Promise.resolve(found);
      return new Promise((resolveLine, reject) => {
        waiters.push({ msg, resolve: resolveLine });
        void exited.then((code) => reject(new Error(`process exited (${code}) before logging "${msg}": ${stderr.join('')}`)));
      });
    },
  };
}

describe.each(dialects)('the service process on %s', (dialect) => {
  let dir: string;
  let database: TestDatabase;
  let running: Running | undefined;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-proc-'));
    database = await openTestDatabase(dialect);
  });
  afterEach(async () => {
    if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
    running = undefined;
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves health checks, reloads on SIGHUP, and exits 0 on SIGTERM', async () => {
    const file = join(dir, 'scheduler.yaml');
    const url = urlOf(database, join(dir, 'data', 'scheduler.db'));
    writeFileSync(file, `database:\n  url: "${url}"\nhttp:\n  port: 0\nreload:\n  watch: false\n`);
    running = run(['start', '--config', file], { SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64'), SCHEDULER_ADMIN_TOKEN: 'tok' });
    const started = await running.waitFor('scheduler started');
    const address = String(started.address);
    expect((await fetch(`${address}/healthz`)).status).toBe(200);
    expect((await fetch(`${address}/readyz`)).status).toBe(200);
    expect((await fetch(`${address}/api/config`)).status).toBe(401);

    writeFileSync(file, `database:\n  url: "${url}"\nhttp:\n  port: 0\nreload:\n  watch: false\nlog:\n  level: debug\n`);
    running.child.kill('SIGHUP');
    const reloaded = await running.waitFor('configuration reloaded');
    expect(reloaded.changed).toEqual(['log.level']);
    const config = await fetch(`${address}/api/config`, { headers: { authorization: 'Bearer tok' } });
    expect(((await config.json()) as { config: { log: { level: string } } }).config.log.level).toBe('debug');

    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
    expect(running.lines.some((l) => l.msg === 'stopped')).toBe(true);
    expect(JSON.stringify(running.lines)).not.toContain('tok"');
  });
});

describe('start-up refusals', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'scheduler-proc-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 naming the key when the configuration is invalid', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'http:\n  port: "eighty"\n');
    const running = run(['start', '--config', file], {});
    expect(await running.exited).toBe(2);
    expect(running.stderr.join('')).toContain('http.port');
  });

  it('exits 2 when asked to serve the admin API beyond loopback without a token', async () => {
    const running = run(['start'], { SCHEDULER__HTTP__HOST: '0.0.0.0', SCHEDULER__DATABASE__URL: 'sqlite::memory:' });
    expect(await running.exited).toBe(2);
    expect(running.stderr.join('')).toContain('SCHEDULER_ADMIN_TOKEN');
  });
});
