import { coerceError } from '../errors.ts';
import type { OutMessage } from '../line/messages.ts';
import type { SendOutcome } from '../line/outcomes.ts';
import { planDispatch } from './dispatch.ts';
import type { MessageGroup } from './groups.ts';
import type { DeliverySender, Retry, SendUnit } from './sender.ts';

/** One request to LINE: it settles the deliveries it carried (one for a push, a chunk for a multicast). */
export interface Request {
  units: readonly SendUnit[];
  call: () => Promise<SendOutcome>;
}

/** The requests on one of a channel's rate limits (push or multicast), at that limit's rate. */
export interface Lane {
  rate: number;
  items: Request[];
}

/**
 * A page's requests, two lanes per channel: first attempts planned into pushes and new multicast
 * chunks (`multicast`: where that drains faster), and retries on the path they took the first time.
 * The page's new chunks are stored (fenced on `leaseToken`) before this returns.
 */
export async function planLanes(sender: DeliverySender, groups: readonly MessageGroup[], multicast: boolean, leaseToken: string): Promise<Lane[]> {
  const byChannel = new Map<number, { messages: OutMessage[]; units: SendUnit[] }[]>();
  for (const g of groups) byChannel.set(g.channelId, [...(byChannel.get(g.channelId) ?? []), g]);
  const lanes: Lane[] = [];
  const chunks: { units: readonly SendUnit[]; messages: OutMessage[]; lane: Request[] }[] = [];
  const messagesOf = new Map<SendUnit, OutMessage[]>();
  for (const g of groups) for (const u of g.units) messagesOf.set(u, g.messages);
  // Only first attempts may be planned into new multicast chunks; retries keep their first path,
  // looked up for every channel of the page at once (a retry's units are all of one channel).
  const retried = groups.flatMap((g) => g.units.filter((u) => u.attempt !== 1));
  const found = retried.length ? await sender.retries(retried.map((unit) => ({ unit, messages: messagesOf.get(unit) ?? [] }))) : [];
  const retriesOf: Map<number, Retry[]> = Map.groupBy(found, (r) => r.units[0]?.channelId ?? 0);
  for (const [channelId, channelGroups] of byChannel) {
    const fresh = channelGroups.map((g) => ({ units: g.units.filter((u) => u.attempt === 1) }));
    const rates = sender.rates(channelId);
    const plan = multicast ? planDispatch(fresh, rates) : { pushes: fresh.flatMap((g) => g.units), multicasts: [] };
    const retries = retriesOf.get(channelId) ?? [];
    const multicastLane: Request[] = retries.filter((r) => r.endpoint === 'multicast');
    for (const units of plan.multicasts) chunks.push({ units, messages: messagesOf.get(units[0] as SendUnit) ?? [], lane: multicastLane });
    lanes.push({ rate: rates.multicastPerSecond, items: multicastLane });
    lanes.push({
      rate: rates.pushPerSecond,
      items: [...retries.filter((r) => r.endpoint === 'push'), ...plan.pushes.map((unit) => ({ units: [unit], call: () => sender.push(unit, messagesOf.get(unit) ?? []) }))],
    });
  }
  // The page's new chunks are stored together before any goes out; if that cannot be done at all, they retry later.
  const calls = await sender.multicasts(chunks, leaseToken).catch((e: unknown) => chunks.map(() => (): Promise<SendOutcome> => Promise.resolve({ kind: 'retryable', afterMs: 5000, reason: `could not store the multicast chunk: ${coerceError(e).message}`, requestId: null })));
  for (const [i, chunk] of chunks.entries()) chunk.lane.push({ units: chunk.units, call: calls[i] ?? (() => Promise.resolve({ kind: 'final', reason: 'multicast chunk lost', status: null, requestId: null })) });
  return lanes;
}
