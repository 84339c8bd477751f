import { randomUUID } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { createLineClient, type LineClient } from '../../src/line/client.ts';
import { startLineEmulator, type LineEmulator } from '../../src/sandbox/line/index.ts';
import { ALICE, openLineHarness, type LineHarness } from './support.ts';

/**
 * The sockets the LINE emulator is connected by, counted by a TCP relay in front of it: each
 * connection the client opens is one the relay accepts and carries on to the emulator.
 */
interface Relay {
  url: string;
  open(): number;
  mostOpen(): number;
  opened(): number;
  close(): Promise<void>;
}

async function relayTo(port: number): Promise<Relay> {
  let open = 0;
  let most = 0;
  let opened = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    opened++;
    most = Math.max(most, ++open);
    const upstream = connect(port, '127.0.0.1');
    sockets.add(socket).add(upstream);
    socket.pipe(upstream).pipe(socket);
    socket.once('close', () => {
      open--;
      upstream.destroy();
    });
    upstream.once('close', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open: () => open,
    mostOpen: () => most,
    opened: () => opened,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const USER = `U${'7'.repeat(32)}`;
let emulator: LineEmulator | undefined;
let relay: Relay | undefined;
let client: LineClient | undefined;
let h: LineHarness | undefined;
afterEach(async () => {
  await client?.close();
  await h?.close();
  h = undefined;
  await relay?.close();
  await emulator?.close();
  client = relay = emulator = undefined;
});

describe('connections to LINE', () => {
  it('a burst of calls opens no more sockets than the cap; a new cap holds for the calls after it', async () => {
    const clock = virtualClock('2026-12-01T00:00:00Z');
    emulator = await startLineEmulator({ clock, channels: [{ accessToken: 'tok', users: [{ userId: USER, displayName: 'Seven' }] }], rateLimits: { push: Infinity } });
    relay = await relayTo(emulator.port);
    let cap = 8;
    client = createLineClient(clock, { connections: () => cap });
    const burst = (n: number) =>
      Promise.all(
        Array.from({ length: n }, (_, i) => client?.call(relay?.url ?? '', 'tok', { method: 'POST', path: '/v2/bot/message/push', body: { to: USER, messages: [{ type: 'text', text: `m${i}` }] }, retryKey: randomUUID() }, 10_000)),
      );

    const first = await burst(100);
    expect(first.map((r) => (r?.kind === 'response' ? r.status : r?.kind))).toEqual(Array.from({ length: 100 }, () => 200));
    expect(relay.mostOpen()).toBeLessThanOrEqual(8);
    expect(relay.opened()).toBeLessThanOrEqual(8);
    expect(emulator.received(USER)).toHaveLength(100);

    // Lowered (a live reload): the next burst goes over a new pool of at most 3.
    cap = 3;
    const before = relay.opened();
    const second = await burst(60);
    expect(second.every((r) => r?.kind === 'response' && r.status === 200)).toBe(true);
    expect(relay.opened() - before).toBeLessThanOrEqual(3);
    expect(emulator.received(USER)).toHaveLength(160);
  });

  it('the service caps its sockets to LINE at notifications.sendConcurrency', async () => {
    h = await openLineHarness('sqlite', { config: { notifications: { sendConcurrency: 4 } } });
    relay = await relayTo(h.emulator.port);
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => h?.line.send.api.call(relay?.url ?? '', h.a.token, { method: 'POST', path: '/v2/bot/message/push', body: { to: ALICE, messages: [{ type: 'text', text: `m${i}` }] }, retryKey: randomUUID() }, 10_000)),
    );
    expect(results.every((r) => r?.kind === 'response' && r.status === 200)).toBe(true);
    expect(relay.opened()).toBeLessThanOrEqual(4);
  });
});
