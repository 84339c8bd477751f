/** What the emulator saw and did: deliveries per user, the request log, counters. */
import { MESSAGES } from './errors.ts';
import type { LineEmulatorCounters, ReceivedMessage, RequestLogEntry } from './types.ts';

export interface Records {
  received: ReceivedMessage[];
  requests: RequestLogEntry[];
  counters: LineEmulatorCounters;
}

export function emptyCounters(): LineEmulatorCounters {
  return {
    requests: 0,
    byEndpoint: {},
    byStatus: {},
    accepted: 0,
    delivered: 0,
    suppressed: 0,
    conflicts: 0,
    rateLimited: 0,
    monthlyLimited: 0,
    faults: 0,
    webhooksSent: 0,
  };
}

export function createRecords(): Records {
  return { received: [], requests: [], counters: emptyCounters() };
}

export function clearRecords(records: Records): void {
  records.received.length = 0;
  records.requests.length = 0;
  records.counters = emptyCounters();
}

const bump = (map: Record<string, number>, key: string): void => {
  map[key] = (map[key] ?? 0) + 1;
};

export function logRequest(records: Records, entry: RequestLogEntry): void {
  records.requests.push(entry);
  const c = records.counters;
  c.requests += 1;
  bump(c.byEndpoint, entry.endpoint ?? 'other');
  bump(c.byStatus, entry.status === null ? entry.outcome : String(entry.status));
  if (entry.fault) c.faults += 1;
  if (entry.status === 409) c.conflicts += 1;
  if (entry.status === 429) {
    if (entry.errorMessage === MESSAGES.monthlyLimit) c.monthlyLimited += 1;
    else c.rateLimited += 1;
  }
}

export function filterReceived(records: Records, userId?: string, channelId?: string): ReceivedMessage[] {
  return records.received.filter(
    (r) => (userId === undefined || r.to === userId) && (channelId === undefined || r.channelId === channelId),
  );
}
