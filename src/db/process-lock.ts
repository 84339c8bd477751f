import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

/**
 * SQLite serves one process: a second one would share leases nobody else sees. A lock file beside
 * the database records our pid; finding a live other pid there is reported (not fatal: the second
 * process may be a one-shot CLI command).
 */
export function claimSqliteProcessLock(sqlitePath: string): { otherPid: number | undefined; release(): void } {
  const file = `${sqlitePath}.pid`;
  let otherPid: number | undefined;
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) otherPid = pid;
  } catch {
    // no lock file yet
  }
  let owned = false;
  if (!otherPid) {
    try {
      const fd = openSync(file, 'w');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      owned = true;
    } catch {
      // a read-only folder: nothing to record
    }
  }
  return {
    otherPid,
    release() {
      if (!owned) return;
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
