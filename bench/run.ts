/**
 * `npm run bench -- <name> [options]`: runs one benchmark and prints its figures. Benchmarks measure;
 * they never assert timings (that is what the numbers in bench/README.md are for).
 */
const BENCHMARKS: Record<string, { description: string; load: () => Promise<{ run(args: string[]): Promise<void> }> }> = {
  engine: { description: 'the 20:00 peak: 100,000 appointments in 20,000 classes on 5 channels, each strategy, against LINE rates', load: () => import('./engine.ts') },
  wheel: { description: 'memory of the timing wheel holding 1,000,000 deliveries over a week, and firing them', load: () => import('./wheel.ts') },
  'peer-bullmq': { description: 'the same peak through BullMQ delayed jobs (needs Redis on 127.0.0.1:6379)', load: () => import('./peers.ts') },
  'peer-pgboss': { description: 'the same peak through pg-boss startAfter jobs (PostgreSQL)', load: () => import('./peer-pgboss.ts') },
  zoom: { description: 'provision 1,000 meetings over a week onto 25 hosts against the emulator (1 s creates, rate limits)', load: () => import('./zoom.ts') },
  import: { description: 'bulk upsert of schedules and appointments through the admin API, vs a bare INSERT', load: () => import('./import.ts') },
  'line-webhook': { description: 'signed LINE follow/unfollow webhooks at the endpoint: events/s and ack latency', load: () => import('./line-webhook.ts') },
  'zoom-webhook': { description: 'signed Zoom participant_joined webhooks for the 20:00 peak: ack latency against Zoom\'s 3 s, then applying them', load: () => import('./zoom-webhook.ts') },
  'line-floor': { description: 'the same peak\'s 73,320 requests from a bare client with no database: the machine\'s floor', load: () => import('./line-floor.ts') },
  'line-push': { description: 'pushes (or multicasts) through our send path to the emulator at LINE rate limits', load: () => import('./line-push.ts') },
};

const [name, ...args] = process.argv.slice(2);
const bench = name ? BENCHMARKS[name] : undefined;
if (!bench) {
  console.log('usage: npm run bench -- <name> [options]\n');
  for (const [key, b] of Object.entries(BENCHMARKS)) console.log(`  ${key.padEnd(10)} ${b.description}`);
  process.exitCode = name ? 2 : 0;
} else {
  await (await bench.load()).run(args);
}
