/** The closing line of a peer benchmark, from what the emulator saw (duplicates, 429s) and the timings. */
export async function reportPeer(o: { label: string; emulatorUrl: string; sent: number; total: number; due: number; last: number; lateness: number[]; channels: number; studentsPerClass: number }): Promise<void> {
  const received = (await (await fetch(`${o.emulatorUrl}/_emulator/received`)).json()) as { to: string }[];
  const perUser = new Map<string, number>();
  for (const r of received) perUser.set(r.to, (perUser.get(r.to) ?? 0) + 1);
  const counters = (await (await fetch(`${o.emulatorUrl}/_emulator/counters`)).json()) as { rateLimited: number };
  // LINE's limits per channel: push 2,000 req/s plus multicast 200 req/s carrying a class each.
  const bound = o.total / o.channels / (2000 + 200 * o.studentsPerClass);
  const sorted = [...o.lateness].sort((a, b) => a - b);
  const pct = (p: number): string => ((sorted[Math.floor(sorted.length * p)] ?? 0) / 1000).toFixed(2);
  const elapsed = (o.last - o.due) / 1000;
  console.log(
    `${o.label} sent ${o.sent}/${o.total}; due→last ${elapsed.toFixed(2)} s; bound ${bound.toFixed(2)} s; ratio ${(elapsed / bound).toFixed(2)}x; lateness p50 ${pct(0.5)} s p99 ${pct(0.99)} s; peak RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB; 429s ${counters.rateLimited}; duplicates ${[...perUser.values()].filter((n) => n > 1).length}`,
  );
}
