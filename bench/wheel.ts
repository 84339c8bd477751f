import { createTimingWheel } from '../src/deliveries/wheel.ts';

/**
 * Memory of the timing wheel holding N pending deliveries spread over a week (goal: 1,000,000 within
 * 300 MB peak RSS for the whole process), and the cost of firing them: one advance per second of the
 * week, as the engine's wake-ups would. Options: --deliveries N (1000000).
 */
export async function run(args: string[]): Promise<void> {
  const i = args.indexOf('--deliveries');
  const n = Number(i >= 0 ? args[i + 1] : 1_000_000);
  const week = 7 * 86_400_000;
  const start = Date.parse('2026-12-01T00:00:00Z');
  globalThis.gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage().rss);
  };
  const t0 = performance.now();
  // Loaded the way the engine loads it: in pages of 10,000 (id, due) rows.
  const wheel = createTimingWheel(start);
  for (let id = 1; id <= n; id += 10_000) {
    const page = Array.from({ length: Math.min(10_000, n - id + 1) }, (_, k) => ({ id: id + k, due: start + Math.floor(((id + k) * 7_919) % week) }));
    for (const row of page) wheel.add(row.id, row.due);
    sample();
  }
  const loadMs = performance.now() - t0;
  sample();
  const held = process.memoryUsage().rss;
  // Re-arm 10% (classes moved), then fire everything over the week.
  for (let id = 1; id <= n; id += 10) wheel.add(id, start + ((id * 104_729) % week));
  const t1 = performance.now();
  let fired = 0;
  for (let t = start; t <= start + week; t += 1000) {
    fired += wheel.advance(t).length;
    if (t % 3_600_000 === 0) sample();
  }
  const fireMs = performance.now() - t1;
  console.log(`timing wheel: ${n} deliveries over 7 days`);
  console.log(`load ${loadMs.toFixed(0)} ms; RSS baseline ${(baseline / 1048576).toFixed(0)} MB, holding ${(held / 1048576).toFixed(0)} MB, peak ${(peak / 1048576).toFixed(0)} MB (goal <= 300 MB; ratio ${(peak / 1048576 / 300).toFixed(2)})`);
  console.log(`fired ${fired} (${fired === n ? 'all, once each' : 'MISMATCH'}) over 604,800 one-second advances in ${fireMs.toFixed(0)} ms`);
}
