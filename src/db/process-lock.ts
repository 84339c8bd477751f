import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pathToFileURL } from 'node:url';

/** Another process on the same SQLite file, as it described itself. */
export interface OtherSqliteProcess {
  /** Its pid in its own PID namespace: in a container this is often 1, not a pid of this host. */
  pid: number | undefined;
  /** Its host name: in a container, usually the container's id. */
  hostname: string | undefined;
}

export interface SqliteProcessLock {
  /** Other live processes on this database (empty when this one is alone). */
  others: OtherSqliteProcess[];
  /** The first other's pid, if any recorded one. */
  otherPid: number | undefined;
  release(): void;
}

const SUFFIX = '.lock';

/**
 * SQLite serves one process: a second one would share leases nobody else sees. Each process holds a
 * read lock on its own small SQLite file in `<db>.locks/` for as long as it runs; another process
 * that can take that file's write lock knows its owner is gone. The kernel drops the lock when a
 * process dies, so a crash leaves no live-looking owner, and it works across PID namespaces (two
 * containers on one volume) and whichever process started first. A live other is reported, not
 * refused (CLI commands do not claim this and may run beside the service).
 *
 * Only node:sqlite may open these files: closing any other descriptor of a file drops this
 * process's POSIX locks on it, which SQLite alone knows how to avoid.
 */
export function claimSqliteProcessLock(sqlitePath: string): SqliteProcessLock {
  const dir = `${sqlitePath}.locks`;
  // Held before looking: of two starting at once, the later at least sees the earlier.
  const own = holdOwnFile(dir);
  const others = findOthers(dir, own?.name);
  return {
    others,
    otherPid: others.find((o) => o.pid !== undefined)?.pid,
    release() {
      if (!own) return;
      try {
        unlinkSync(join(dir, own.name));
      } catch {
        // already gone
      }
      try {
        own.db.close();
      } catch {
        // already closed
      }
    },
  };
}

function holdOwnFile(dir: string): { name: string; db: DatabaseSync } | undefined {
  const name = `${randomUUID()}${SUFFIX}`;
  const temp = join(dir, `${name}.tmp`);
  let db: DatabaseSync | undefined;
  try {
    mkdirSync(dir, { recursive: true });
    db = new DatabaseSync(temp, { timeout: 0 });
    db.exec('CREATE TABLE holder (pid INTEGER, hostname TEXT)');
    db.prepare('INSERT INTO holder (pid, hostname) VALUES (?, ?)').run(process.pid, hostname());
    // An open read transaction keeps a shared lock, so others can read who we are but never lock it
    // for writing while we run.
    db.exec('BEGIN');
    db.prepare('SELECT pid FROM holder').get();
    // Named as a lock only once held: a file found unlocked under that name is a dead process's.
    renameSync(temp, join(dir, name));
    return { name, db };
  } catch {
    // A read-only folder: nothing to hold, but others can still be found.
    try {
      db?.close();
      unlinkSync(temp);
    } catch {
      // not created
    }
    return undefined;
  }
}

function findOthers(dir: string, ownName: string | undefined): OtherSqliteProcess[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(SUFFIX) && n !== ownName);
  } catch {
    return [];
  }
  const others: OtherSqliteProcess[] = [];
  for (const name of names) {
    const file = join(dir, name);
    const url = pathToFileURL(file);
    // mode=rw: a file removed meanwhile is not created again.
    url.searchParams.set('mode', 'rw');
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(url, { timeout: 0 });
    } catch {
      continue; // removed meanwhile, or unreadable
    }
    try {
      try {
        // Busy at once (no busy wait) while its owner holds its shared lock.
        db.exec('BEGIN EXCLUSIVE');
      } catch (error) {
        if (isBusy(error)) others.push(identify(db));
        continue; // otherwise unknowable (a read-only file): not reported
      }
      db.exec('ROLLBACK');
      unlinkSync(file); // its owner died without releasing it
    } catch {
      // removed by another process that found it stale at the same moment
    } finally {
      db.close();
    }
  }
  return others;
}

function identify(db: DatabaseSync): OtherSqliteProcess {
  try {
    const row = db.prepare('SELECT pid, hostname FROM holder').get();
    return {
      pid: typeof row?.pid === 'number' ? row.pid : undefined,
      hostname: typeof row?.hostname === 'string' ? row.hostname : undefined,
    };
  } catch {
    // locked by a process checking it at this very moment: alive, but unnamed
    return { pid: undefined, hostname: undefined };
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === 'number' && (code & 0xff) === 5; // SQLITE_BUSY
}
