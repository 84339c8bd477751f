import { parentPort, workerData } from 'node:worker_threads';
import { startLineEmulator } from '../src/sandbox/line/index.ts';
import type { EmulatorThreadOptions } from './emulator-thread.ts';

/**
 * The LINE emulator in its own thread (its own event loop and core), for benchmarks: it enforces
 * LINE's per-channel rate limits on the system clock. Driven over HTTP (/_emulator/…) once started.
 */
const input = workerData as EmulatorThreadOptions;
const emulator = await startLineEmulator({
  channels: input.channels,
  unknownUsers: input.unknownUsers,
  ...(input.unlimited ? { rateLimits: { push: Infinity, multicast: Infinity } } : {}),
  ...(input.latencyMs ? { latencyMs: input.latencyMs } : {}),
});
parentPort?.postMessage({ url: emulator.url });
// The thread's own CPU time, asked for by benchmarks that split the rig's cost from the service's.
parentPort?.on('message', (m: unknown) => {
  if (m === 'cpu') {
    const usage = process.threadCpuUsage();
    parentPort?.postMessage({ cpuMs: (usage.user + usage.system) / 1000 });
  }
});
