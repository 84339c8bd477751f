import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';

/**
 * CPU time spent during a benchmark phase, by this process (every thread, the emulator's included)
 * and by the local PostgreSQL server's processes. Their sum over the cores is a floor no scheduling
 * can beat on this machine, and so is the service's main thread alone (one core at most): when
 * either is above the rate-limit bound, the bound cannot be reached here.
 */
export interface CpuSample {
  processMs: number;
  /** The service's main thread alone: its JavaScript (and SQLite) cannot use a second core. */
  mainMs: number;
  emulatorMs: number;
  postgresMs: number;
}

/** `emulator`: the LINE emulator worker (bench/line-emulator-worker.ts), which reports its thread's CPU. */
export async function sampleCpu(emulator: Worker): Promise<CpuSample> {
  const emulatorMs = await new Promise<number>((resolve) => {
    emulator.once('message', (m: { cpuMs: number }) => resolve(m.cpuMs));
    emulator.postMessage('cpu');
  });
  const usage = process.cpuUsage();
  const main = process.threadCpuUsage();
  return { processMs: (usage.user + usage.system) / 1000, mainMs: (main.user + main.system) / 1000, emulatorMs, postgresMs: postgresCpuMs() };
}

export function describeCpu(from: CpuSample, to: CpuSample, withPostgres: boolean): { text: string; floorSeconds: number } {
  const processS = (to.processMs - from.processMs) / 1000;
  const emulatorS = (to.emulatorMs - from.emulatorMs) / 1000;
  const postgresS = withPostgres ? (to.postgresMs - from.postgresMs) / 1000 : 0;
  const mainS = (to.mainMs - from.mainMs) / 1000;
  const cores = availableParallelism();
  // Neither the cores shared nor the one main thread can be beaten: the floor is the larger.
  const floorSeconds = Math.max((processS + postgresS) / cores, mainS);
  const pg = withPostgres ? ` + PostgreSQL ${postgresS.toFixed(1)} s` : '';
  return {
    text: `CPU: service ${(processS - emulatorS).toFixed(1)} s (main thread ${mainS.toFixed(1)} s) + emulator thread ${emulatorS.toFixed(1)} s${pg}; over ${cores} cores ${((processS + postgresS) / cores).toFixed(2)} s, so ${floorSeconds.toFixed(2)} s at least`,
    floorSeconds,
  };
}

/** utime + stime of every process named postgres (Linux /proc; 0 elsewhere). Clock ticks are 10 ms. */
function postgresCpuMs(): number {
  let ticks = 0;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      if (stat.slice(stat.indexOf('(') + 1, close) !== 'postgres') continue;
      const fields = stat.slice(close + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks * 10;
}
