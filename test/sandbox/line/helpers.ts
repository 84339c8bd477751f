import { HTTPFetchError, messagingApi } from '@line/bot-sdk';
import { randomUUID } from 'node:crypto';
import { afterEach } from 'vitest';
import { startLineEmulator } from '../../../src/sandbox/line/index.ts';
import type { LineEmulator, LineEmulatorOptions } from '../../../src/sandbox/line/index.ts';

export const ALICE = `U${'a'.repeat(32)}`;
export const BOB = `U${'b'.repeat(32)}`;
export const CAROL = `U${'c'.repeat(32)}`;
export const STRANGER = `U${'d'.repeat(32)}`;

export const TOKEN = 'token-channel-1';
export const SECRET = '8c570fa6dd201bb328f1c1eac23a96d8';
export const BOT = 'U8e742f61d673b39c7fff3cecb7536ef0';

const open: LineEmulator[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()));
});

/** An emulator with one channel ("ch1") followed by Alice, Bob and Carol; closed after each test. */
export async function startWithChannel(options: LineEmulatorOptions = {}): Promise<LineEmulator> {
  const emulator = await startLineEmulator({
    channels: [
      {
        channelId: 'ch1',
        channelSecret: SECRET,
        accessToken: TOKEN,
        botUserId: BOT,
        users: [
          { userId: ALICE, displayName: 'Alice', language: 'ja' },
          { userId: BOB, displayName: 'Bob' },
          { userId: CAROL, displayName: 'Carol' },
        ],
      },
    ],
    ...options,
  });
  open.push(emulator);
  return emulator;
}

export function sdk(emulator: LineEmulator, token = TOKEN): messagingApi.MessagingApiClient {
  return new messagingApi.MessagingApiClient({ channelAccessToken: token, baseURL: emulator.url });
}

export const text = (t: string): messagingApi.TextMessage => ({ type: 'text', text: t });

export interface RawResponse {
  status: number;
  headers: Headers;
  body: unknown;
}

/** A raw call, for status codes and bodies the SDK would throw on. */
export async function call(
  emulator: LineEmulator,
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string; token?: string | null; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const hasBody = options.body !== undefined || options.rawBody !== undefined;
  if (hasBody && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${emulator.url}${path}`, {
    method,
    headers,
    ...(hasBody && { body: options.rawBody ?? JSON.stringify(options.body) }),
    ...(options.signal && { signal: options.signal }),
  });
  const textBody = await res.text();
  return { status: res.status, headers: res.headers, body: textBody === '' ? undefined : (JSON.parse(textBody) as unknown) };
}

export const push = (emulator: LineEmulator, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> =>
  call(emulator, 'POST', '/v2/bot/message/push', { body, headers });

export const newKey = (): string => randomUUID();

/** Runs `fn`, expecting the SDK to throw HTTPFetchError; returns it. */
export async function sdkError(fn: () => Promise<unknown>): Promise<HTTPFetchError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof HTTPFetchError) return err;
    throw err;
  }
  throw new Error('expected the SDK call to fail');
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
