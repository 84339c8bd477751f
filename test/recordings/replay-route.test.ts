import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { replayToken, replayUrlFor } from '../../src/recordings/replay.ts';
import { dialects } from '../support/databases.ts';
import { file, openRecordingWorld, replayApp, type RecordingWorld } from './world.ts';

describe.each(dialects)('GET /replay/:token (%s)', (dialect) => {
  let w: RecordingWorld;
  let app: FastifyInstance;
  let id: number;
  beforeEach(async () => {
    w = await openRecordingWorld(dialect);
    const rec = w.recordings();
    await rec.ingest(await w.record([file('replay-mp4', 'MP4', 70_000)]));
    await rec.runOnce();
    id = (await w.rows())[0]?.id ?? 0;
    app = await replayApp(w, rec.store);
  });
  afterEach(async () => {
    await app.close();
    await w.close();
  });

  const path = (url: string) => new URL(url).pathname;

  it('streams the stored file without the admin token, with its type and a checksum etag', async () => {
    const url = replayUrlFor(w.config.current(), w.box, id, w.clock.now());
    const res = await app.inject({ method: 'GET', url: path(url) });
    const served = w.em.recordingFile('replay-mp4');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('video/mp4');
    expect(res.headers['accept-ranges']).toBe('bytes');
    expect(res.headers['content-length']).toBe('70000');
    expect(res.headers.etag).toBe(`"${served?.sha256}"`);
    expect(res.rawPayload.equals(served?.bytes ?? Buffer.alloc(0))).toBe(true);
  });

  it('answers ranges with 206, and 416 past the end', async () => {
    const url = path(replayUrlFor(w.config.current(), w.box, id, w.clock.now()));
    const served = w.em.recordingFile('replay-mp4')?.bytes ?? Buffer.alloc(0);
    const part = await app.inject({ method: 'GET', url, headers: { range: 'bytes=1000-1999' } });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe('bytes 1000-1999/70000');
    expect(part.rawPayload.equals(served.subarray(1000, 2000))).toBe(true);
    const tail = await app.inject({ method: 'GET', url, headers: { range: 'bytes=-10' } });
    expect(tail.rawPayload.equals(served.subarray(69_990))).toBe(true);
    const beyond = await app.inject({ method: 'GET', url, headers: { range: 'bytes=70000-' } });
    expect(beyond.statusCode).toBe(416);
    expect(beyond.headers['content-range']).toBe('bytes */70000');
  });

  it('refuses tampered (403), unknown (404) and expired (410) links with a clear message', async () => {
    const token = replayToken(w.box, id, new Date(w.clock.now().getTime() + 60_000));
    const tampered = await app.inject({ method: 'GET', url: `/replay/${token.replace(/^\d+\./, `${id + 1}.`)}` });
    expect(tampered.statusCode).toBe(403);
    expect(tampered.json()).toMatchObject({ message: expect.stringContaining('not valid') });
    expect((await app.inject({ method: 'GET', url: '/replay/garbage' })).statusCode).toBe(404);
    const missing = await app.inject({ method: 'GET', url: `/replay/${replayToken(w.box, id + 100, new Date(w.clock.now().getTime() + 60_000))}` });
    expect(missing.statusCode).toBe(404);
    await w.clock.set(new Date(w.clock.now().getTime() + 60_000));
    const expired = await app.inject({ method: 'GET', url: `/replay/${token}` });
    expect(expired.statusCode).toBe(410);
    expect(expired.json()).toMatchObject({ message: expect.stringContaining('expired') });
  });
});
