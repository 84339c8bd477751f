import { Worker } from 'node:worker_threads';
import type { LineChannelInput, UnknownUserPolicy } from '../src/sandbox/line/index.ts';

/** What bench/line-emulator-worker.ts is started with. */
export interface EmulatorThreadOptions {
  channels: LineChannelInput[];
  unknownUsers: UnknownUserPolicy;
  /** No rate limits: the raw request rate. */
  unlimited?: boolean;
  /** Added before every answer, as LINE across a network. */
  latencyMs?: number;
}

/** Starts the LINE emulator in a thread of its own and resolves once it listens, with its base URL. */
export async function startEmulatorThread(options: EmulatorThreadOptions): Promise<{ worker: Worker; url: string }> {
  const worker = new Worker(new URL('./line-emulator-worker.ts', import.meta.url), { workerData: options });
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { url: string }) => resolve(m.url));
    worker.once('error', reject);
  });
  return { worker, url };
}
