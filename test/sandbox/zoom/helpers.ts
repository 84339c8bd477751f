/** Fixtures and a tiny HTTP client for the Zoom emulator tests (real HTTP on 127.0.0.1). */
import { z } from 'zod';
import { virtualClock, type VirtualClock } from '../../../src/clock.ts';
import { startZoomEmulator, type ZoomAccountConfig, type ZoomEmulator, type ZoomEmulatorOptions } from '../../../src/sandbox/zoom/index.ts';

export const PRO: ZoomAccountConfig = {
  accountId: 'acct-pro',
  clientId: 'pro-client',
  clientSecret: 'pro-secret',
  plan: 'pro',
  users: [
    { id: 'host-a', email: 'host-a@example.com' },
    { id: 'host-b', email: 'host-b@example.com' },
    { id: 'host-off', email: 'off@example.com', hostingDisabled: true },
  ],
};

export const FREE: ZoomAccountConfig = {
  accountId: 'acct-free',
  clientId: 'free-client',
  clientSecret: 'free-secret',
  plan: 'basic',
  users: [{ id: 'basic-1', email: 'basic-1@example.com' }],
};

export const BIZ: ZoomAccountConfig = {
  accountId: 'acct-biz',
  clientId: 'biz-client',
  clientSecret: 'biz-secret',
  plan: 'business',
  users: [{ id: 'biz-1', email: 'biz-1@example.com' }],
};

export interface Harness {
  em: ZoomEmulator;
  clock: VirtualClock;
}

/** An emulator on a virtual clock with no latency; callers close it. */
export async function start(options: ZoomEmulatorOptions = {}): Promise<Harness> {
  const clock = virtualClock('2026-03-02T08:00:00Z');
  const em = await startZoomEmulator({ accounts: [PRO, FREE, BIZ], clock, createLatencyMs: 0, ...options });
  return { em, clock };
}

export interface Res {
  status: number;
  body: unknown;
  headers: Headers;
}

export async function requestToken(em: ZoomEmulator, account: ZoomAccountConfig): Promise<string> {
  const basic = Buffer.from(`${account.clientId}:${account.clientSecret}`).toString('base64');
  const res = await fetch(`${em.oauthUrl}?grant_type=account_credentials&account_id=${account.accountId}`, {
    method: 'POST',
    headers: { Authorization: `Basic ${basic}` },
  });
  return z.object({ access_token: z.string() }).parse(await res.json()).access_token;
}

export async function call(em: ZoomEmulator, token: string, method: string, path: string, body?: unknown, init?: RequestInit): Promise<Res> {
  const res = await fetch(`${em.apiBaseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as unknown), headers: res.headers };
}

export const meetingShape = z.object({ id: z.number(), uuid: z.string(), host_id: z.string(), start_time: z.string(), status: z.string() });

export function meetingBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    topic: 'Class [booking:1]',
    type: 2,
    start_time: '2026-03-02T10:00:00Z',
    duration: 60,
    timezone: 'UTC',
    settings: { join_before_host: true, jbh_time: 5, waiting_room: false, approval_type: 2 },
    ...overrides,
  };
}

export async function createMeeting(em: ZoomEmulator, token: string, host: string, overrides: Record<string, unknown> = {}): Promise<z.infer<typeof meetingShape>> {
  const res = await call(em, token, 'POST', `/users/${host}/meetings`, meetingBody(overrides));
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return meetingShape.parse(res.body);
}

/** Yields to the event loop until `cond` holds (never a timed sleep); fails after many turns. */
export async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 10_000; i++) {
    if (cond()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error('condition never became true');
}
