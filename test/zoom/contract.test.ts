import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { startZoomEmulator, type ZoomEmulator } from '../../src/sandbox/zoom/index.ts';
import { createZoomClient, type ZoomClient } from '../../src/zoom/client.ts';
import type { ZoomCredentials } from '../../src/zoom/tokens.ts';

/**
 * The client's contract: runs against the emulator by default. With ZOOM_CONTRACT_ACCOUNT_ID,
 * ZOOM_CONTRACT_CLIENT_ID, ZOOM_CONTRACT_CLIENT_SECRET and ZOOM_CONTRACT_HOST set, the same
 * assertions run against the real Zoom API (creating and deleting one meeting), which checks the
 * emulator's fidelity wherever the internet is reachable.
 */
const real = process.env.ZOOM_CONTRACT_ACCOUNT_ID
  ? {
      creds: { accountId: process.env.ZOOM_CONTRACT_ACCOUNT_ID, clientId: process.env.ZOOM_CONTRACT_CLIENT_ID ?? '', clientSecret: process.env.ZOOM_CONTRACT_CLIENT_SECRET ?? '' },
      host: process.env.ZOOM_CONTRACT_HOST ?? '',
    }
  : undefined;

describe(`Zoom client contract (${real ? 'real Zoom API' : 'emulator'})`, () => {
  let em: ZoomEmulator | undefined;
  let client: ZoomClient;
  let creds: ZoomCredentials;
  let host: string;
  beforeAll(async () => {
    const clock = systemClock();
    if (real) {
      creds = real.creds;
      host = real.host;
    } else {
      em = await startZoomEmulator({ createLatencyMs: 0, accounts: [{ accountId: 'acc', clientId: 'cid', clientSecret: 'sec', plan: 'pro', users: [{ id: 'hostid', email: 'host@example.com' }] }] });
      creds = { accountId: 'acc', clientId: 'cid', clientSecret: 'sec' };
      host = 'host@example.com';
    }
    const apiBaseUrl = em?.apiBaseUrl ?? 'https://api.zoom.us/v2';
    const oauthUrl = em?.oauthUrl ?? 'https://zoom.us/oauth/token';
    client = createZoomClient({ clock, settings: () => ({ apiBaseUrl, oauthUrl, timeoutMs: 20_000, attempts: 3, backoff: { baseDelayMs: 500, maxDelayMs: 5000 } }) });
  });
  afterAll(async () => {
    await em?.close();
  });

  it('creates, reads, finds by marker, moves and deletes a scheduled meeting', async () => {
    const marker = `[scheduler:contract-${Date.now()}]`;
    const start = new Date(Date.now() + 7 * 86_400_000);
    start.setUTCMinutes(0, 0, 0);
    const created = await client.createMeeting(creds, host, {
      topic: 'Scheduler contract test',
      type: 2,
      start_time: start.toISOString().replace('.000', ''),
      duration: 30,
      timezone: 'UTC',
      agenda: marker,
      settings: { join_before_host: true, jbh_time: 10, waiting_room: false, auto_recording: 'none', approval_type: 2, meeting_authentication: false },
    });
    try {
      expect(created.id).toMatch(/^\d+$/);
      expect(created.join_url).toMatch(/^https?:\/\//);
      const got = await client.getMeeting(creds, created.id);
      expect(got.agenda).toBe(marker);
      expect(Date.parse(got.start_time ?? '')).toBe(start.getTime());
      const listed = await client.listMeetings(creds, host, 'scheduled');
      expect(listed.some((m) => m.id === created.id && m.agenda.includes(marker))).toBe(true);
      const later = new Date(start.getTime() + 3_600_000);
      await client.updateMeeting(creds, created.id, { start_time: later.toISOString().replace('.000', ''), duration: 40, timezone: 'UTC' });
      expect((await client.getMeeting(creds, created.id)).duration).toBe(40);
    } finally {
      await client.deleteMeeting(creds, created.id);
    }
    const gone = await client.getMeeting(creds, created.id).catch((e: unknown) => e);
    expect(gone).toMatchObject({ kind: 'final', status: 404, code: 3001 });
  });
});
