import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { claimSqliteProcessLock } from '../../src/db/process-lock.ts';

const LOCK = resolve(import.meta.dirname, '../../src/db/process-lock.ts');

interface Found {
  otherPid: number | null;
  others: unknown;
}

/**
 * A separate process that claims the lock and prints what it found. With `pid`, it believes it has
 * that pid, as two containers on one volume both do (each is pid 1 in its own namespace).
 */
const script = (dbPath: string, opts: { hold: boolean; pid?: number }) => `
${opts.pid === undefined ? '' : `Object.defineProperty(process, 'pid', { value: ${opts.pid} });`}
const { claimSqliteProcessLock } = await import(${JSON.stringify(LOCK)});
const lock = claimSqliteProcessLock(${JSON.stringify(dbPath)});
process.stdout.write(JSON.stringify({ otherPid: lock.otherPid ?? null, others: lock.others ?? null }) + '\\n');
${opts.hold ? "process.stdin.resume(); process.stdin.on('end', () => { lock.release(); process.exit(0); });" : 'lock.release();'}
`;

const children: ChildProcessWithoutNullStreams[] = [];

/** Starts a service-like process that holds the lock until its stdin closes (or it is killed). */
async function holder(dbPath: string, pid?: number): Promise<{ child: ChildProcessWithoutNullStreams; found: Found }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script(dbPath, { hold: true, pid })]);
  children.push(child);
  let out = '';
  while (!out.includes('\n')) {
    const [chunk] = (await Promise.race([once(child.stdout, 'data'), once(child, 'exit').then(() => { throw new Error(`holder exited early: ${out}`); })])) as [Buffer];
    out += chunk.toString();
  }
  return { child, found: JSON.parse(out) as Found };
}

async function stop(child: ChildProcessWithoutNullStreams, signal?: NodeJS.Signals): Promise<void> {
  const exited = once(child, 'exit');
  if (signal) child.kill(signal);
  else child.stdin.end();
  await exited;
}

/** A process that claims and releases at once, like a start that is about to be warned. */
function oneShot(dbPath: string, pid?: number): Found {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script(dbPath, { hold: false, pid })], { encoding: 'utf8' });
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as Found;
}

describe('SQLite second-process detection (README: a second process on the same file is reported at start)', () => {
  let dir: string;
  let db: string;
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) await stop(child, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const setup = () => {
    dir = mkdtempSync(join(tmpdir(), 'process-lock-'));
    db = join(dir, 'scheduler.db');
  };

  it('reports a second opener while the first holds it, with the pid and host name the first recorded', async () => {
    setup();
    const a = await holder(db);
    expect(a.found.otherPid).toBeNull();

    const b = claimSqliteProcessLock(db);
    try {
      expect(b.otherPid).toBe(a.child.pid);
      expect(b.others).toEqual([{ pid: a.child.pid, hostname: hostname() }]);
    } finally {
      b.release();
    }
  });

  it('still reports a third opener after the first stops, while the second runs', async () => {
    setup();
    const a = await holder(db);
    const b = await holder(db);
    expect(b.found.otherPid).toBe(a.child.pid);

    await stop(a.child);

    expect(oneShot(db).otherPid).toBe(b.child.pid);
    // Also when the second was started in this very process.
    await stop(b.child);
    const c = claimSqliteProcessLock(db);
    try {
      expect(oneShot(db).otherPid).toBe(process.pid);
    } finally {
      c.release();
    }
  });

  it('reports a second process that has the same pid, as each container on a shared volume has', async () => {
    setup();
    const a = await holder(db, 1);
    expect(a.found.otherPid).toBeNull();

    const b = oneShot(db, 1);
    expect(b.otherPid).toBe(1);
    expect(b.others).toEqual([{ pid: 1, hostname: hostname() }]);
  });

  it('reports nobody once all have stopped, even one that crashed and whose pid now belongs to a live process', async () => {
    setup();
    // Recorded as this (live) test process's pid: once it crashes, its pid belongs to a live process.
    const a = await holder(db, process.pid);
    const b = await holder(db);
    expect(b.found.otherPid).toBe(process.pid);

    await stop(b.child);
    await stop(a.child, 'SIGKILL');

    expect(oneShot(db)).toEqual({ otherPid: null, others: [] });
    const d = claimSqliteProcessLock(db);
    try {
      expect(d.others).toEqual([]);
    } finally {
      d.release();
    }
    // The crashed one's file was removed by the first opener that found it unlocked.
    expect(readdirSync(`${db}.locks`)).toEqual([]);
  });
});
